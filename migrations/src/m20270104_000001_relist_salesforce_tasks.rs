//! Salesforce Tasks read before `crm_related_record.activity_type` existed were kept without
//! their type (the reads did not ask for `Type`), so the contacts-list filter
//! `crm.activity.open_type` missed them. Forgetting the Task stream's cursors makes the next
//! related read list every Task again, this time with its type; the listing records what
//! exists without announcing it as new (no trigger fires for a Task already known). Data
//! only: nothing to undo.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let forget = Query::delete()
            .from_table(Alias::new("sync_cursor"))
            .and_where(Expr::col(Alias::new("name")).is_in([
                "related:Task",
                "related:Task:page",
                "related:Task:seen",
                "related:Task:began",
            ]))
            .to_owned();
        manager.exec_stmt(forget).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
