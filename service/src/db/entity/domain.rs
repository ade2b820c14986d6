use sea_orm::entity::prelude::*;
use vmw_types::{DomainMethod, DomainState};

/// A custom domain of a user's site (issue #30). `name` is the validated ASCII form
/// (`domain_name::DomainName`), unique over every user. Only `store::domains` reads or writes
/// these rows; the row goes with its hosting (FK cascade, and the delete lifecycle).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "domains")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub hosting_id: i32,
    pub user_id: i32,
    #[sea_orm(unique)]
    pub name: String,
    pub state: DomainState,
    pub method: Option<DomainMethod>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// Checks or issuances that failed in a row (the back-off).
    pub attempts: i32,
    pub next_check_at: Option<i64>,
    pub verified_at: Option<i64>,
    pub cert_not_after: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
