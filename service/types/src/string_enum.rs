//! `string_enum!`: an enum whose values are its variants' names in snake_case, in JSON (serde), in the
//! database (sea-orm `ActiveEnum`, with the `db` feature) and in logs (`Display`), with a human
//! label for the pages.

/// The name was not one of the enum's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownValue {
    pub of: &'static str,
    pub value: String,
}

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}' is not a {}", self.value, self.of)
    }
}

impl std::error::Error for UnknownValue {}

/// The stored name of a variant: its Rust name in snake_case (`PowerOff` -> `power_off`), the
/// same rule serde's and sea-orm's `rename_all = "snake_case"` apply, so the three always agree
/// (the tests below check every enum). Renaming a variant renames what is stored: a migration.
pub const fn snake_len(name: &str) -> usize {
    let b = name.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < b.len() {
        n += if i > 0 && b[i].is_ascii_uppercase() { 2 } else { 1 };
        i += 1;
    }
    n
}

/// [`snake_len`]'s bytes: `name` in snake_case.
pub const fn snake<const N: usize>(name: &str) -> [u8; N] {
    let b = name.as_bytes();
    let mut out = [0u8; N];
    let (mut i, mut o) = (0, 0);
    while i < b.len() {
        if i > 0 && b[i].is_ascii_uppercase() {
            out[o] = b'_';
            o += 1;
        }
        out[o] = b[i].to_ascii_lowercase();
        o += 1;
        i += 1;
    }
    out
}

/// Each variant is `Name,`, or `Name => "Human label",` where its label (`label()`) is not its
/// name; its stored name is its name in snake_case ([`snake`]).
#[macro_export]
macro_rules! string_enum {
    (@label $variant:ident $label:literal) => {
        $label
    };
    (@label $variant:ident) => {
        stringify!($variant)
    };
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident $(=> $label:literal)?,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[cfg_attr(feature = "db", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
        #[cfg_attr(feature = "db", sea_orm(rs_type = "String", db_type = "String(sea_orm::sea_query::StringLen::None)", rename_all = "snake_case"))]
        pub enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => {
                        const LEN: usize = $crate::string_enum::snake_len(stringify!($variant));
                        const BYTES: [u8; LEN] = $crate::string_enum::snake::<LEN>(stringify!($variant));
                        match std::str::from_utf8(&BYTES) {
                            Ok(s) => s,
                            Err(_) => panic!("a variant name is ASCII"),
                        }
                    })+
                }
            }

            /// Human label (badges, buttons, progress views).
            pub const fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $crate::string_enum!(@label $variant $($label)?),)+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        // The OpenAPI schema by hand: utoipa's derive would document the Rust names
        // (`"Queued"`), while the wire says `"queued"`. The values are the wire's.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(Self::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::string_enum::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s).ok_or_else(|| $crate::string_enum::UnknownValue { of: stringify!($name), value: s.to_owned() })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::*;

    /// What each enum's values are stored and sent as: renaming a variant must fail here (its
    /// rows would need a migration), and serde, sea-orm and `as_str` must agree.
    macro_rules! stored_names {
        ($($name:ty: [$($v:literal),+],)+) => {$(
            let names: Vec<&str> = <$name>::ALL.iter().map(|v| v.as_str()).collect();
            assert_eq!(names, [$($v),+], "{}", stringify!($name));
            for v in <$name>::ALL {
                assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{}\"", v.as_str()));
                assert_eq!(serde_json::from_str::<$name>(&format!("\"{}\"", v.as_str())).unwrap(), *v);
                assert_eq!(<$name>::parse(v.as_str()), Some(*v));
                assert_eq!(v.to_string().parse::<$name>(), Ok(*v));
                #[cfg(feature = "db")]
                assert_eq!(sea_orm::ActiveEnum::to_value(v), v.as_str(), "sea-orm's stored value");
            }
            assert!(<$name>::parse("Queued").is_none() && <$name>::parse("").is_none());
        )+};
    }

    #[test]
    fn every_value_is_stored_and_sent_as_its_snake_case_name() {
        stored_names! {
            AccountEventKind: ["login_succeeded", "login_failed", "token_created", "token_revoked", "password_changed", "disabled", "enabled"],
            EventKind: ["step", "undo", "state", "action"],
            EventStatus: ["started", "succeeded", "failed", "undone", "info", "queued", "provisioning", "running", "stopped", "sleeping", "deleting", "deleted"],
            HostingState: ["queued", "provisioning", "running", "stopped", "failed", "deleting", "spare", "sleeping"],
            Operation: ["create", "start", "stop", "restart", "delete", "power_off", "sleep", "wake", "snapshot", "restore_snapshot", "backup", "restore_backup"],
            SnapshotState: ["taking", "ready"],
            BackupState: ["running", "succeeded", "failed"],
            BackupTrigger: ["manual", "scheduled"],
            BackupSource: ["running", "saved", "powered_off"],
            DomainState: ["waiting_dns", "verified", "issuing", "active", "renewing", "failed"],
            DomainMethod: ["cname", "txt"],
            CertSource: ["local_ca", "acme", "operator"],
            CreateKind: ["cold", "clone", "warm"],
            SpareTier: ["paused", "saved"],
            TokenKind: ["login", "api"],
            Step: ["allocate_ports", "create_disk", "write_seed", "define_domain", "start_vm", "wait_ready", "add_route", "save_spare", "pause_spare", "clone_vm", "reidentify", "set_hostname"],
        }
    }
}
