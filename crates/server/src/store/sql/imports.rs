//! Imports: a bank's transactions written batch by batch, each once: in one
//! transaction, or a background job's in chunks that each move its cursor.
//!
//! A transaction is skipped when its provider id is already imported (the
//! unique key does that), when an imported expense with that id was deleted,
//! when it was exported from an expense the user still has, or when an older
//! server imported it under its old id. The last three are looked up by key
//! before each batch's insert, and only when the user can have any: an
//! anti-join inside the insert is planned by PostgreSQL as a hash of all the
//! user's expenses, so every batch cost as much as the whole history.

use std::collections::HashSet;

use chrono::NaiveDate;
use finance_shared::Expense;
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, QueryBuilder, Type};
use uuid::Uuid;

use crate::bank::{BankTransaction, Correction, LEGACY_FINGERPRINTS};

use super::super::{
    ImportBatches, ImportOutcome, ImportRequest, JOB_CHUNK, Rollup, StoreError, Unique, now_micros,
};
use super::writes::{Conn, Which};
use super::{Column, Engine, SqlStore, sql};

/// An import's batches, each with the insert of all its rows.
type Prepared<'r, DB> = (
    ImportBatches<'r>,
    Vec<(Vec<(Expense, &'r BankTransaction)>, QueryBuilder<DB>)>,
);

/// What an import's rows are checked against besides their ids, beyond
/// what every user needs: each check is an index lookup per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ImportChecks {
    /// The user has deleted imported expenses of this source.
    deleted: bool,
    /// The user has ids from [`LEGACY_FINGERPRINTS`] under this source,
    /// imported or deleted, and the import has old ids to look for.
    legacy: bool,
}

impl<E: Engine> SqlStore<E>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::DB>,
    <E::DB as Database>::Arguments: IntoArguments<E::DB>,
    usize: ColumnIndex<<E::DB as Database>::Row>,
    E::Time: Column<E::DB>,
    Uuid: Column<E::DB>,
    String: Column<E::DB>,
    Option<String>: Column<E::DB>,
    i64: Column<E::DB>,
    Option<i64>: Column<E::DB>,
    i32: Column<E::DB>,
    bool: Column<E::DB>,
    NaiveDate: Column<E::DB>,
    Vec<u8>: Column<E::DB>,
    for<'a> &'a str: Encode<'a, E::DB> + Type<E::DB>,
{
    /// Writes an import (see [`super::super::Store::import`]).
    pub(crate) async fn import_in(
        &self,
        user_id: Uuid,
        request: ImportRequest<'_>,
    ) -> Result<ImportOutcome, StoreError> {
        if let Some(job) = request.job {
            return self.import_job_in(user_id, request, job).await;
        }
        let prepared = Self::prepare(user_id, &request);
        let mut tx = self.engine.begin_write().await?;
        let mut outcome = Self::write_transactions(&mut tx, user_id, &request, prepared).await?;
        if !outcome.imported.is_empty() {
            Self::apply_rollup(&mut tx, user_id, &Rollup::of(&outcome.imported)).await?;
        }
        Self::correct_in(&mut tx, user_id, &request, &mut outcome).await?;
        if request.dry_run {
            tx.rollback().await?;
            return Ok(outcome);
        }
        // The response is only kept (and so only built here) for a key.
        if request.idempotency.is_some() {
            let body = (request.body)(&outcome);
            Self::remember(&mut tx, user_id, request.idempotency, 201, body).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Writes a background job's import [`JOB_CHUNK`] transactions per
    /// commit, from the job's cursor on, moving the cursor in each commit;
    /// the last commit keeps the result under the job's key.
    async fn import_job_in(
        &self,
        user_id: Uuid,
        request: ImportRequest<'_>,
        job: Uuid,
    ) -> Result<ImportOutcome, StoreError> {
        let text = sql!(
            E,
            "SELECT written, imported, skipped FROM import_job_cursors WHERE job_id = ?"
        );
        let mut conn = self.engine.read_pool().acquire().await?;
        let cursor: Option<(i64, i64, i64)> = sqlx::query_as(text)
            .bind(job)
            .fetch_optional(&mut *conn)
            .await?;
        drop(conn);
        let (written, mut imported, mut skipped) = cursor.unwrap_or_default();
        let all = request.transactions;
        let mut at = usize::try_from(written).unwrap_or(0).min(all.len());
        while at < all.len() {
            let end = (at + JOB_CHUNK).min(all.len());
            let progress = |n: usize| {
                if let Some(progress) = request.progress {
                    progress(at + n);
                }
            };
            let chunk = ImportRequest {
                transactions: &all[at..end],
                progress: Some(&progress),
                ..request
            };
            let prepared = Self::prepare(user_id, &chunk);
            let mut tx = self.engine.begin_write().await?;
            let outcome = Self::write_transactions(&mut tx, user_id, &chunk, prepared).await?;
            if !outcome.imported.is_empty() {
                Self::apply_rollup(&mut tx, user_id, &Rollup::of(&outcome.imported)).await?;
            }
            let (added, passed) = (outcome.imported_total as i64, outcome.skipped as i64);
            let moved = if at == 0 {
                let text = sql!(
                    E,
                    "INSERT INTO import_job_cursors (job_id, written, imported, skipped) \
                     VALUES (?, ?, ?, ?)"
                );
                let insert = sqlx::query(text)
                    .bind(job)
                    .bind(end as i64)
                    .bind(added)
                    .bind(passed);
                let inserted = insert.execute(&mut *tx).await;
                E::rows_affected(
                    &inserted.map_err(|e| StoreError::from(e).on(Unique::IdempotencyKey))?,
                )
            } else {
                let text = sql!(
                    E,
                    "UPDATE import_job_cursors SET written = ?, imported = imported + ?, \
                     skipped = skipped + ? WHERE job_id = ? AND written = ?"
                );
                let update = sqlx::query(text).bind(end as i64).bind(added).bind(passed);
                E::rows_affected(&update.bind(job).bind(at as i64).execute(&mut *tx).await?)
            };
            // Another run of the job moved the cursor first: it goes on.
            if moved != 1 {
                return Err(StoreError::Conflict(Unique::IdempotencyKey));
            }
            tx.commit().await?;
            // The user's data version moved: token state held for them is behind.
            self.engine.wrote(user_id);
            imported += outcome.imported_total as i64;
            skipped += outcome.skipped as i64;
            at = end;
        }
        let mut outcome = ImportOutcome {
            imported: Vec::new(),
            imported_total: u64::try_from(imported).unwrap_or(0),
            skipped: u64::try_from(skipped).unwrap_or(0),
            replaced: 0,
            deleted: 0,
        };
        let mut tx = self.engine.begin_write().await?;
        if !request.corrections.is_empty() {
            Self::lock_users_first(&mut tx, [user_id]).await?;
            Self::correct_in(&mut tx, user_id, &request, &mut outcome).await?;
            outcome.imported.clear();
        }
        let body = (request.body)(&outcome);
        Self::remember(&mut tx, user_id, request.idempotency, 201, body).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Applies an import's corrections after its rows: a replacement
    /// rewrites the expense imported under its id (keeping the expense's id
    /// and category), or is imported as that id when there is none and it
    /// was not deleted; a deletion deletes the expense, and keeps its id
    /// among the deleted imports either way, so that re-importing the file,
    /// or the statement it corrects, changes nothing more.
    async fn correct_in(
        conn: &mut Conn<E>,
        user_id: Uuid,
        request: &ImportRequest<'_>,
        outcome: &mut ImportOutcome,
    ) -> Result<(), StoreError> {
        let source = request.source;
        for t in request.corrections {
            let external_id = t.external_id.as_str();
            let which = Which::Imported {
                source,
                external_id,
            };
            let found = Self::expense_in(conn, user_id, which)
                .await?
                .map(|(e, _)| e);
            match (t.correction, found) {
                (Some(Correction::Delete), old) => {
                    Self::remove_in(conn, user_id, old.as_ref(), source, Some(external_id)).await?;
                    match old {
                        Some(_) => outcome.deleted += 1,
                        None => outcome.skipped += 1,
                    }
                }
                (_, Some(old)) => {
                    let new = Expense {
                        amount: t.amount,
                        spent_on: t.spent_on,
                        description: t.description.clone(),
                        ..old.clone()
                    };
                    if new == old {
                        outcome.skipped += 1;
                    } else {
                        Self::rewrite_in(conn, user_id, &old, &new).await?;
                        outcome.replaced += 1;
                    }
                }
                (_, None) => {
                    let rows = [(t.to_expense(source, now_micros()), t)];
                    let checks = ImportChecks {
                        deleted: true,
                        legacy: false,
                    };
                    let written = Self::insert_imported(conn, user_id, &rows, checks, None).await?;
                    let [(expense, _)] = rows;
                    if written.contains(&expense.id) {
                        Self::apply_rollup(
                            conn,
                            user_id,
                            &Rollup::of(std::slice::from_ref(&expense)),
                        )
                        .await?;
                        outcome.imported.push(expense);
                        outcome.imported_total += 1;
                    } else {
                        outcome.skipped += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// A request's batches, each with the insert of all its rows, built
    /// before the transaction (on SQLite, outside the one writer's lock).
    fn prepare<'r>(user_id: Uuid, request: &ImportRequest<'r>) -> Prepared<'r, E::DB> {
        let mut batches = ImportBatches::new(request);
        let mut statements = Vec::new();
        while let Some(rows) = batches.next_batch() {
            let insert = Self::insert_statement(user_id, &rows.iter().collect::<Vec<_>>());
            statements.push((rows, insert));
        }
        (batches, statements)
    }

    /// Writes prepared batches in `conn`'s transaction, skipping the rows it
    /// must; says what it wrote (the rollup is the caller's).
    async fn write_transactions(
        conn: &mut Conn<E>,
        user_id: Uuid,
        request: &ImportRequest<'_>,
        (mut batches, statements): Prepared<'_, E::DB>,
    ) -> Result<ImportOutcome, StoreError> {
        Self::lock_users_first(conn, [user_id]).await?;
        let checks = Self::import_checks(conn, user_id, request).await?;
        for (rows, insert) in statements {
            let written = Self::insert_imported(conn, user_id, &rows, checks, Some(insert)).await?;
            batches.keep(rows, &written);
        }
        Ok(batches.finish())
    }

    /// What `source`'s import for the user has to check (a look at the edges
    /// of two indexes, not a scan: the ids compare as bytes).
    async fn import_checks(
        conn: &mut Conn<E>,
        user_id: Uuid,
        request: &ImportRequest<'_>,
    ) -> Result<ImportChecks, sqlx::Error> {
        let text = sql!(
            E,
            format!(
                "SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM deleted_imports \
                   WHERE user_id = ? AND source = ?) THEN 1 ELSE 0 END AS {int}), \
                 CAST(CASE WHEN EXISTS (SELECT 1 FROM expenses \
                   WHERE user_id = ? AND source = ? AND external_id >= ? AND external_id < ?) \
                 OR EXISTS (SELECT 1 FROM deleted_imports \
                   WHERE user_id = ? AND source = ? AND external_id >= ? AND external_id < ?) \
                 THEN 1 ELSE 0 END AS {int})",
                int = E::INT64
            )
        );
        let (from, to) = LEGACY_FINGERPRINTS;
        let mut query = sqlx::query_as::<_, (i64, i64)>(text)
            .bind(user_id)
            .bind(request.source);
        for _ in 0..2 {
            query = query.bind(user_id).bind(request.source).bind(from).bind(to);
        }
        let (deleted, legacy) = query.fetch_one(&mut *conn).await?;
        Ok(ImportChecks {
            deleted: deleted != 0,
            legacy: legacy != 0 && request.looks_for_legacy_ids(),
        })
    }

    /// Inserts one batch of an import in one statement, skipping what it
    /// must (see the module's comment); returns the ids of the rows written.
    async fn insert_imported(
        conn: &mut Conn<E>,
        user_id: Uuid,
        rows: &[(Expense, &BankTransaction)],
        checks: ImportChecks,
        prepared: Option<QueryBuilder<E::DB>>,
    ) -> Result<HashSet<Uuid>, sqlx::Error> {
        let Some((first, _)) = rows.first() else {
            return Ok(HashSet::new());
        };
        let source = first.source.as_str();
        let origins: Vec<Uuid> = rows.iter().filter_map(|(_, t)| t.origin).collect();
        let mut present: HashSet<Uuid> = HashSet::new();
        if !origins.is_empty() {
            let mut query = QueryBuilder::<E::DB>::new("SELECT id FROM expenses WHERE user_id = ");
            query.push_bind(user_id).push(" AND ");
            E::push_any_id(&mut query, "id", &origins);
            present.extend(
                query
                    .build_query_scalar::<Uuid>()
                    .fetch_all(&mut *conn)
                    .await?,
            );
        }
        let legacy = super::super::legacy_ids(rows, checks.legacy);
        let known = Self::known_ids(conn, user_id, source, rows, checks, &legacy).await?;
        let all = rows.len();
        let rows: Vec<_> = rows
            .iter()
            .filter(|(_, t)| t.origin.is_none_or(|o| !present.contains(&o)))
            .filter(|(_, t)| !checks.deleted || !known.contains(&t.external_id))
            .filter(|(_, t)| t.legacy_id.as_ref().is_none_or(|l| !known.contains(l)))
            .collect();
        if rows.is_empty() {
            return Ok(HashSet::new());
        }
        // The statement built beforehand has every row; rebuilt only when
        // some were found to be skipped.
        let mut query = match prepared {
            Some(query) if rows.len() == all => query,
            _ => Self::insert_statement(user_id, &rows),
        };

        if E::RETURNING {
            query.push(" RETURNING id");
            let ids: Vec<Uuid> = query.build_query_scalar().fetch_all(&mut *conn).await?;
            return Ok(ids.into_iter().collect());
        }
        // Counted rather than returned: on SQLite, returned rows come back
        // from the connection's thread one message (and one wake-up) apiece.
        // A batch is usually written whole or not at all.
        let written = E::rows_affected(&query.build().execute(&mut *conn).await?);
        if written == rows.len() as u64 {
            return Ok(rows.iter().map(|(e, _)| e.id).collect());
        }
        if written == 0 {
            return Ok(HashSet::new());
        }
        // The batch's ids are new: those there now are the ones it wrote.
        let ids: Vec<Uuid> = rows.iter().map(|(e, _)| e.id).collect();
        let mut query = QueryBuilder::<E::DB>::new("SELECT id FROM expenses WHERE ");
        E::push_any_id(&mut query, "id", &ids);
        let ids: Vec<Uuid> = query.build_query_scalar().fetch_all(&mut *conn).await?;
        Ok(ids.into_iter().collect())
    }

    /// The insert of a batch's rows, skipping those already imported.
    fn insert_statement(
        user_id: Uuid,
        rows: &[&(Expense, &BankTransaction)],
    ) -> QueryBuilder<E::DB> {
        let mut query = QueryBuilder::<E::DB>::new(
            "INSERT INTO expenses (id, category, category_key, description, description_key, \
             amount_minor, spent_on, created_at, source, external_id, user_id) ",
        );
        query.push_values(rows, |mut row, (e, t)| {
            row.push_bind(e.id)
                .push_bind(&e.category)
                .push_bind(finance_shared::validate::category_key(&e.category).as_str())
                .push_bind(&e.description)
                .push_bind(e.description.as_deref().map(super::super::search_key))
                .push_bind(e.amount.minor())
                .push_bind(e.spent_on)
                .push_bind(E::time(e.created_at))
                .push_bind(e.source.as_str())
                .push_bind(&t.external_id)
                .push_bind(user_id);
        });
        query.push(E::ignore_duplicates("user_id, source, external_id", "id"));
        query
    }

    /// The provider ids among a batch's (when the user has deleted imports)
    /// and its old ids that are imported or deleted already.
    async fn known_ids(
        conn: &mut Conn<E>,
        user_id: Uuid,
        source: &str,
        rows: &[(Expense, &BankTransaction)],
        checks: ImportChecks,
        legacy: &[&str],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let mut deleted: Vec<&str> = legacy.to_vec();
        if checks.deleted {
            deleted.extend(rows.iter().map(|(_, t)| t.external_id.as_str()));
        }
        if deleted.is_empty() {
            return Ok(HashSet::new());
        }
        let mut query =
            QueryBuilder::<E::DB>::new("SELECT external_id FROM deleted_imports WHERE user_id = ");
        query
            .push_bind(user_id)
            .push(" AND source = ")
            .push_bind(source)
            .push(" AND ");
        E::push_any_text(&mut query, "external_id", &deleted);
        // Old ids count as imported when an expense still has one.
        if !legacy.is_empty() {
            query
                .push(" UNION ALL SELECT external_id FROM expenses WHERE user_id = ")
                .push_bind(user_id)
                .push(" AND source = ")
                .push_bind(source)
                .push(" AND ");
            E::push_any_text(&mut query, "external_id", legacy);
        }
        let known: Vec<String> = query.build_query_scalar().fetch_all(&mut *conn).await?;
        Ok(known.into_iter().collect())
    }
}
