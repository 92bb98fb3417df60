//! The whole data model of DESIGN §4. Names avoid `jobs`/`workers`: apalis owns those tables and
//! SQLite compares table names case-insensitively.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(from_table: &'static str, from_col: &'static str, to_table: &'static str, on_delete: ForeignKeyAction) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{from_table}_{from_col}"))
        .from(from_table, from_col)
        .to(to_table, "id")
        .on_delete(on_delete)
        .take()
}

fn index(table: &'static str, cols: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(format!("{}_{}_{}", if unique { "ux" } else { "ix" }, table, cols.join("_"))).table(table);
    for c in cols {
        idx.col(*c);
    }
    if unique {
        idx.unique();
    }
    idx.take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use ForeignKeyAction::{Cascade, Restrict, SetNull};

        // ---- What the LMS tells us (synced) ----
        m.create_table(
            Table::create()
                .table("course_category")
                .col(big_pk_auto("id"))
                .col(string("lms_id"))
                .col(big_integer_null("parent_id"))
                .col(string("name"))
                // Materialized path of database ids ("/1/4/"), so that a subtree is one LIKE.
                .col(string("path"))
                .col(integer("depth"))
                .col(integer("sort_order"))
                .col(timestamp_with_time_zone("synced_at"))
                .foreign_key(&mut fk("course_category", "parent_id", "course_category", Restrict))
                .take(),
        )
        .await?;
        m.create_index(index("course_category", &["lms_id"], true)).await?;
        m.create_index(index("course_category", &["parent_id"], false)).await?;
        m.create_index(index("course_category", &["path"], false)).await?;

        m.create_table(
            Table::create()
                .table("course")
                .col(big_pk_auto("id"))
                .col(string("lms_id"))
                .col(big_integer("category_id"))
                .col(string("short_name"))
                .col(string("full_name"))
                .col(boolean("visible"))
                .col(timestamp_with_time_zone_null("start_date"))
                .col(timestamp_with_time_zone_null("end_date"))
                .col(timestamp_with_time_zone("synced_at"))
                .foreign_key(&mut fk("course", "category_id", "course_category", Restrict))
                .take(),
        )
        .await?;
        m.create_index(index("course", &["lms_id"], true)).await?;
        m.create_index(index("course", &["category_id"], false)).await?;
        m.create_index(index("course", &["short_name"], false)).await?;
        m.create_index(index("course", &["full_name"], false)).await?;

        m.create_table(
            Table::create()
                .table("activity")
                .col(big_pk_auto("id"))
                .col(string("lms_id"))
                .col(big_integer("course_id"))
                .col(string("kind"))
                .col(string("name"))
                .col(timestamp_with_time_zone_null("opens_at"))
                .col(timestamp_with_time_zone_null("closes_at"))
                // SHA-256 (hex) over what the driver says defines the activity's state.
                .col(string_null("fingerprint"))
                .col(timestamp_with_time_zone("synced_at"))
                .foreign_key(&mut fk("activity", "course_id", "course", Restrict))
                .take(),
        )
        .await?;
        m.create_index(index("activity", &["lms_id"], true)).await?;
        m.create_index(index("activity", &["course_id", "kind"], false)).await?;

        m.create_table(
            Table::create()
                .table("person")
                .col(big_pk_auto("id"))
                .col(string("lms_id"))
                .col(string("username"))
                .col(string("first_name"))
                .col(string("last_name"))
                .col(string_null("email"))
                .col(string_null("id_number"))
                .col(timestamp_with_time_zone("synced_at"))
                .take(),
        )
        .await?;
        m.create_index(index("person", &["lms_id"], true)).await?;
        m.create_index(index("person", &["username"], false)).await?;

        // ---- Storage ----
        m.create_table(
            Table::create()
                .table("storage_backend")
                .col(big_pk_auto("id"))
                .col(string("name"))
                .col(string("driver"))
                .col(string("tier"))
                // Driver settings, secrets included: never leave the server.
                .col(json("settings"))
                .col(boolean("enabled"))
                .col(boolean("is_default"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("health_checked_at"))
                .col(boolean_null("health_reachable"))
                .col(big_integer_null("health_free_bytes"))
                .col(big_integer_null("health_used_bytes"))
                .col(text_null("health_error"))
                .take(),
        )
        .await?;
        m.create_index(index("storage_backend", &["name"], true)).await?;

        // ---- Jobs ----
        m.create_table(
            Table::create()
                .table("archive_job")
                .col(pk_uuid("id"))
                .col(big_integer("course_id"))
                .col(string("status"))
                .col(integer("progress"))
                .col(string("origin"))
                .col(string("requested_by"))
                .col(json("settings"))
                .col(integer("attempt"))
                // The last stage whose completion was persisted: a restarted worker resumes after it.
                .col(string_null("completed_stage"))
                .col(text_null("error"))
                .col(boolean("cancel_requested"))
                // Per-job event sequence number, so subscribers can order and de-duplicate.
                .col(big_integer("sequence"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("started_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .col(timestamp_with_time_zone_null("deadline"))
                .col(timestamp_with_time_zone_null("next_retry_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut fk("archive_job", "course_id", "course", Restrict))
                .take(),
        )
        .await?;
        m.create_index(index("archive_job", &["course_id", "created_at"], false)).await?;
        m.create_index(index("archive_job", &["status"], false)).await?;
        m.create_index(index("archive_job", &["created_at"], false)).await?;

        m.create_table(
            Table::create()
                .table("archive_job_transition")
                .col(big_pk_auto("id"))
                .col(uuid("job_id"))
                .col(string_null("from_status"))
                .col(string("to_status"))
                .col(integer("attempt"))
                .col(timestamp_with_time_zone("at"))
                .foreign_key(&mut fk("archive_job_transition", "job_id", "archive_job", Cascade))
                .take(),
        )
        .await?;
        m.create_index(index("archive_job_transition", &["job_id", "id"], false)).await?;

        m.create_table(
            Table::create()
                .table("archive_task")
                .col(big_pk_auto("id"))
                .col(uuid("job_id"))
                .col(big_integer("activity_id"))
                .col(string("driver"))
                .col(string("status"))
                .col(integer("progress"))
                .col(string_null("fingerprint"))
                .col(text_null("error"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("started_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut fk("archive_task", "job_id", "archive_job", Cascade))
                .foreign_key(&mut fk("archive_task", "activity_id", "activity", Restrict))
                .take(),
        )
        .await?;
        m.create_index(index("archive_task", &["job_id"], false)).await?;
        m.create_index(index("archive_task", &["activity_id", "status"], false)).await?;

        m.create_table(
            Table::create()
                .table("archive_file")
                .col(big_pk_auto("id"))
                .col(uuid("job_id"))
                .col(big_integer_null("task_id"))
                .col(big_integer("storage_backend_id"))
                .col(string("storage_key"))
                .col(string("file_name"))
                .col(big_integer("size_bytes"))
                .col(string("sha256"))
                .col(string("media_type"))
                .col(timestamp_with_time_zone_null("retention_until"))
                .col(boolean("legal_hold"))
                .col(timestamp_with_time_zone_null("deleted_at"))
                .col(text_null("deletion_reason"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("archive_file", "job_id", "archive_job", Restrict))
                .foreign_key(&mut fk("archive_file", "task_id", "archive_task", SetNull))
                .foreign_key(&mut fk("archive_file", "storage_backend_id", "storage_backend", Restrict))
                .take(),
        )
        .await?;
        m.create_index(index("archive_file", &["storage_backend_id", "storage_key"], true)).await?;
        m.create_index(index("archive_file", &["job_id"], false)).await?;
        m.create_index(index("archive_file", &["retention_until"], false)).await?;

        m.create_table(
            Table::create()
                .table("archive_content")
                .col(big_pk_auto("id"))
                .col(big_integer("task_id"))
                .col(big_integer("person_id"))
                .col(string("record_kind"))
                .col(string("lms_record_id"))
                .col(string("path"))
                .foreign_key(&mut fk("archive_content", "task_id", "archive_task", Cascade))
                .foreign_key(&mut fk("archive_content", "person_id", "person", Restrict))
                .take(),
        )
        .await?;
        m.create_index(index("archive_content", &["person_id"], false)).await?;
        m.create_index(index("archive_content", &["task_id"], false)).await?;

        m.create_table(
            Table::create()
                .table("timestamp_token")
                .col(big_pk_auto("id"))
                .col(big_integer("file_id"))
                .col(string("tsa_url"))
                .col(string("hash_algorithm"))
                .col(blob("query_der"))
                .col(blob("reply_der"))
                .col(timestamp_with_time_zone_null("gen_time"))
                .col(string_null("serial"))
                .col(boolean("verified"))
                .col(text_null("verification_error"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("timestamp_token", "file_id", "archive_file", Cascade))
                .take(),
        )
        .await?;
        m.create_index(index("timestamp_token", &["file_id"], false)).await?;

        m.create_table(
            Table::create()
                .table("job_log")
                .col(big_pk_auto("id"))
                .col(uuid("job_id"))
                .col(big_integer_null("task_id"))
                // 0 TRACE, 1 DEBUG, 2 INFO, 3 WARN, 4 ERROR, 5 FATAL: numeric so `level >= min` is one index range.
                .col(small_integer("level"))
                .col(text("message"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("job_log", "job_id", "archive_job", Cascade))
                .foreign_key(&mut fk("job_log", "task_id", "archive_task", SetNull))
                .take(),
        )
        .await?;
        m.create_index(index("job_log", &["job_id", "id"], false)).await?;

        // ---- Policies ----
        m.create_table(
            Table::create()
                .table("policy_setting")
                .col(string("key").primary_key())
                .col(json("value"))
                .col(boolean("locked"))
                .col(timestamp_with_time_zone("updated_at"))
                .col(string_null("updated_by"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("category_policy")
                .col(big_integer("category_id").primary_key())
                // null: inherit from the parent category (the root default is on).
                .col(boolean_null("archiving_enabled"))
                .col(timestamp_with_time_zone("updated_at"))
                .col(string_null("updated_by"))
                .foreign_key(&mut fk("category_policy", "category_id", "course_category", Cascade))
                .take(),
        )
        .await?;

        // ---- Automation ----
        m.create_table(
            Table::create()
                .table("automation_rule")
                .col(big_pk_auto("id"))
                .col(string("name"))
                .col(boolean("enabled"))
                .col(string("trigger"))
                .col(string_null("schedule"))
                .col(string_null("signal"))
                .col(json("criteria"))
                .col(json("settings"))
                .col(string_null("notify_email"))
                .col(timestamp_with_time_zone_null("last_fired_at"))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("automation_run")
                .col(big_pk_auto("id"))
                .col(big_integer("rule_id"))
                // The tick this run belongs to: unique per rule, so a tick fires once cluster-wide.
                .col(timestamp_with_time_zone("tick_at"))
                .col(integer("jobs_created"))
                .col(text_null("error"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("automation_run", "rule_id", "automation_rule", Cascade))
                .take(),
        )
        .await?;
        m.create_index(index("automation_run", &["rule_id", "tick_at"], true)).await?;

        // ---- Outbound: e-mail and event connectors ----
        m.create_table(
            Table::create()
                .table("notification_outbox")
                .col(big_pk_auto("id"))
                .col(string("kind"))
                .col(string("recipient"))
                .col(string("subject"))
                .col(text("body"))
                .col(string("status"))
                .col(integer("attempts"))
                .col(timestamp_with_time_zone("next_attempt_at"))
                .col(text_null("last_error"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("sent_at"))
                .take(),
        )
        .await?;
        m.create_index(index("notification_outbox", &["status", "next_attempt_at"], false)).await?;

        m.create_table(
            Table::create()
                .table("event_connector")
                .col(big_pk_auto("id"))
                .col(string("name"))
                .col(string("kind"))
                .col(string("url"))
                // HMAC secret: never leaves the server.
                .col(string("secret"))
                .col(json("event_types"))
                .col(boolean("enabled"))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;
        m.create_index(index("event_connector", &["name"], true)).await?;

        m.create_table(
            Table::create()
                .table("connector_delivery")
                .col(big_pk_auto("id"))
                .col(big_integer("connector_id"))
                .col(string("event_type"))
                .col(json("payload"))
                .col(string("status"))
                .col(integer("attempts"))
                .col(timestamp_with_time_zone("next_attempt_at"))
                .col(integer_null("response_status"))
                .col(text_null("last_error"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("delivered_at"))
                .foreign_key(&mut fk("connector_delivery", "connector_id", "event_connector", Cascade))
                .take(),
        )
        .await?;
        m.create_index(index("connector_delivery", &["status", "next_attempt_at"], false)).await?;

        // ---- GDPR and audit ----
        m.create_table(
            Table::create()
                .table("gdpr_request")
                .col(pk_uuid("id"))
                .col(big_integer("person_id"))
                .col(string("kind"))
                .col(string("status"))
                .col(string("requested_by"))
                .col(text_null("error"))
                .col(string_null("result_storage_key"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .foreign_key(&mut fk("gdpr_request", "person_id", "person", Restrict))
                .take(),
        )
        .await?;
        m.create_index(index("gdpr_request", &["person_id"], false)).await?;

        m.create_table(
            Table::create()
                .table("audit_log")
                .col(big_pk_auto("id"))
                .col(string("actor"))
                .col(string("action"))
                .col(string("target_type"))
                .col(string_null("target_id"))
                .col(json("details"))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;
        m.create_index(index("audit_log", &["created_at"], false)).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "audit_log", "gdpr_request", "connector_delivery", "event_connector", "notification_outbox",
            "automation_run", "automation_rule", "category_policy", "policy_setting", "job_log",
            "timestamp_token", "archive_content", "archive_file", "archive_task", "archive_job_transition",
            "archive_job", "storage_backend", "person", "activity", "course", "course_category",
        ] {
            m.drop_table(Table::drop().table(t).take()).await?;
        }
        Ok(())
    }
}
