use sea_orm::entity::prelude::*;

/// Never serialised to clients: map to a DTO. Debug redacts the hash.
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub email: String,
    #[sea_orm(unique)]
    pub username: String,
    pub password_hash: String,
    pub is_admin: bool,
    /// Bumped on password change: sessions and login tokens of an older version are void.
    pub auth_version: i32,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set while an administrator has disabled the account.
    pub disabled_at: Option<i64>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("is_admin", &self.is_admin)
            .field("disabled_at", &self.disabled_at)
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
