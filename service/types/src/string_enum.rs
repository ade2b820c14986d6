//! `string_enum!`: an enum whose values are stable snake_case strings, in JSON (serde), in the
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

/// Each variant is `Name = "stored_name",`, or `Name = "stored_name" => "Human label",` where
/// its label (`label()`) is not its name.
macro_rules! string_enum {
    (@label $variant:ident $label:literal) => {
        $label
    };
    (@label $variant:ident) => {
        stringify!($variant)
    };
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal $(=> $label:literal)?,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "db", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
        #[cfg_attr(feature = "db", sea_orm(rs_type = "String", db_type = "String(sea_orm::sea_query::StringLen::None)"))]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[serde(rename = $value)]
                #[cfg_attr(feature = "db", sea_orm(string_value = $value))]
                $variant,
            )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }

            /// Human label (badges, buttons, progress views).
            pub const fn label(self) -> &'static str {
                match self {
                    $($name::$variant => string_enum!(@label $variant $($label)?),)+
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($value => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        // The OpenAPI schema by hand: utoipa's derive reads `#[serde(rename = $value)]` only when
        // the value is a plain literal token, and a macro's `$value` is not one (it documented
        // the Rust names, `"Queued"`, while the wire says `"queued"`). The values are the wire's.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($value),+]))
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
