//! Editing, deleting, searching, categories, trends, export and file imports,
//! over real HTTP, on every storage backend.

mod common;

use std::path::PathBuf;

use common::{Backend, Reply, TestApp, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_every_backend!(
    edit_changes_only_the_fields_given_and_keeps_the_summary_exact,
    edit_validates_like_create_and_hides_other_users_expenses,
    delete_removes_the_expense_and_its_totals,
    deleted_imports_stay_deleted,
    search_matches_description_and_category_in_any_case,
    categories_list_counts_and_rename_merges,
    trend_shows_every_month_and_is_cached,
    export_streams_every_expense_and_reimports_without_duplicates,
    an_export_of_100000_expenses_reimports_without_duplicates,
    ofx_fixtures_reproduce_their_counts_and_totals,
    csv_fixtures_reproduce_their_counts_and_totals,
    csv_identical_rows_are_distinct_expenses_imported_once,
    csv_rows_an_older_server_imported_or_saw_deleted_stay_out,
    csv_bad_lines_are_reported_and_strict_imports_nothing,
    csv_reads_a_bom_legacy_bytes_and_multipart,
    listed_pages_are_cached_and_every_write_shows_at_once,
    summary_of_any_range_adds_up_its_days_and_months,
);

fn fixture(name: &str) -> Vec<u8> {
    // The shared fixtures sit beside the checkout; FINANCE_FIXTURES overrides.
    let dir = std::env::var_os("FINANCE_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/bank-files"),
        PathBuf::from,
    );
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {}: {e}; set FINANCE_FIXTURES to the bank-files directory",
            path.display()
        )
    })
}

fn cents(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not an amount: {v}"));
    let negative = s.starts_with('-');
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    let n: i64 = digits.parse().expect("digits");
    if negative { -n } else { n }
}

async fn summary_of(app: &TestApp, token: &str) -> Value {
    app.summary(token, "").await.body
}

/// Imports CSV text with no mapping (as this server's own export needs none).
async fn import_csv(app: &TestApp, token: &str, text: &str) -> Reply {
    app.upload(
        "/api/imports/csv",
        token,
        "text/csv",
        text.as_bytes().to_vec(),
    )
    .await
}

/// An import's answer as (imported, skipped).
fn imported_skipped(reply: &Reply) -> (Value, Value) {
    (
        reply.body["imported"].clone(),
        reply.body["skipped"].clone(),
    )
}

async fn edit_changes_only_the_fields_given_and_keeps_the_summary_exact(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let created = app
        .post(
            "/api/expenses",
            Some(&token),
            json!({"category": "Food", "amount": "10.00", "description": "lunch", "spent_on": "2026-10-01"}),
        )
        .await
        .body;
    app.add(&token, "Food", json!("5.00"), "2026-10-02").await;
    let id = created["id"].as_str().expect("id");
    assert_eq!(summary_of(&app, &token).await["total"], "15.00");

    let changed = app
        .patch(
            &format!("/api/expenses/{id}"),
            &token,
            json!({"amount": 12.5, "category": "Travel"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["amount"], "12.50");
    assert_eq!(changed.body["category"], "Travel");
    assert_eq!(changed.body["description"], "lunch", "untouched");
    assert_eq!(changed.body["spent_on"], "2026-10-01", "untouched");
    assert_eq!(changed.body["created_at"], created["created_at"]);

    let summary = summary_of(&app, &token).await;
    assert_eq!(summary["total"], "17.50");
    assert_eq!(
        summary["categories"],
        json!([
            {"category": "Travel", "total": "12.50", "count": 1},
            {"category": "Food", "total": "5.00", "count": 1},
        ])
    );

    let moved = app
        .patch(
            &format!("/api/expenses/{id}"),
            &token,
            json!({"spent_on": "2026-09-30", "description": null}),
        )
        .await;
    assert_eq!(moved.body["description"], Value::Null);
    let september = app
        .summary(&token, "?from=2026-09-01&to=2026-09-30")
        .await
        .body;
    assert_eq!(september["total"], "12.50");
    let october = app
        .summary(&token, "?from=2026-10-01&to=2026-10-31")
        .await
        .body;
    assert_eq!(october["total"], "5.00");
    let fetched = app.get(&format!("/api/expenses/{id}"), &token).await;
    assert_eq!(fetched.body, moved.body);
}

async fn edit_validates_like_create_and_hides_other_users_expenses(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.new_user().await;
    let other = app.new_user().await;
    let e = app.add(&owner, "Food", json!("3.00"), "2026-10-01").await;
    let path = format!("/api/expenses/{}", e["id"].as_str().expect("id"));
    let bad = app
        .patch(
            &path,
            &owner,
            json!({"amount": "0", "category": " ", "spent_on": "yesterday", "description": 5}),
        )
        .await;
    bad.assert_error(422, "validation_failed");
    for field in ["amount", "category", "spent_on", "description"] {
        assert!(
            bad.body["fields"][field].is_string(),
            "{field}: {}",
            bad.body
        );
    }
    app.patch(&path, &other, json!({"amount": "1.00"}))
        .await
        .assert_error(404, "not_found");
    app.delete(&path, &other)
        .await
        .assert_error(404, "not_found");
    app.patch(
        "/api/expenses/not-a-uuid",
        &owner,
        json!({"amount": "1.00"}),
    )
    .await
    .assert_error(404, "not_found");
    let unchanged = app.get(&path, &owner).await;
    assert_eq!(unchanged.body["amount"], "3.00");
    assert_eq!(summary_of(&app, &owner).await["total"], "3.00");
}

async fn delete_removes_the_expense_and_its_totals(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let a = app.add(&token, "Food", json!("4.10"), "2026-10-01").await;
    app.add(&token, "Rent", json!("900"), "2026-10-01").await;
    assert_eq!(summary_of(&app, &token).await["total"], "904.10");
    let path = format!("/api/expenses/{}", a["id"].as_str().expect("id"));
    let gone = app.delete(&path, &token).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    app.get(&path, &token).await.assert_error(404, "not_found");
    app.delete(&path, &token)
        .await
        .assert_error(404, "not_found");
    let summary = summary_of(&app, &token).await;
    assert_eq!(summary["total"], "900.00");
    assert_eq!(
        summary["categories"],
        json!([{"category": "Rent", "total": "900.00", "count": 1}])
    );
    let categories = app.get("/api/categories", &token).await.body;
    assert_eq!(categories["categories"].as_array().map(Vec::len), Some(1));
}

async fn deleted_imports_stay_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let first = app
        .post(
            "/api/imports/mock",
            Some(&token),
            json!({"seed": 7, "count": 5}),
        )
        .await;
    let victim = first.body["expenses"][0]["id"].as_str().expect("id");
    let gone = app.delete(&format!("/api/expenses/{victim}"), &token).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let again = app
        .post(
            "/api/imports/mock",
            Some(&token),
            json!({"seed": 7, "count": 5}),
        )
        .await;
    assert_eq!(imported_skipped(&again), (json!(0), json!(5)));
    assert_eq!(summary_of(&app, &token).await["count"], 4);
}

async fn search_matches_description_and_category_in_any_case(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    for (category, description, day) in [
        ("Coffee", "Flat white at CAFÉ Nero", "2026-10-01"),
        ("Food", "café lunch", "2026-10-02"),
        ("Cafeteria", "", "2026-10-03"),
        ("Food", "groceries", "2026-10-04"),
        ("Food", "100% juice_box", "2026-10-05"),
    ] {
        let body = if description.is_empty() {
            json!({"category": category, "amount": "1.00", "spent_on": day})
        } else {
            json!({"category": category, "amount": "1.00", "spent_on": day, "description": description})
        };
        assert_eq!(
            app.post("/api/expenses", Some(&token), body).await.status,
            StatusCode::CREATED
        );
    }
    let found = |query: &'static str| {
        let app = &app;
        let token = &token;
        async move {
            let reply = app.get(&format!("/api/expenses?{query}"), token).await;
            assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
            reply.body["expenses"]
                .as_array()
                .expect("expenses")
                .iter()
                .map(|e| e["spent_on"].as_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("q=caf%C3%A9").await, ["2026-10-02", "2026-10-01"]);
    assert_eq!(
        found("q=CAF").await,
        ["2026-10-03", "2026-10-02", "2026-10-01"]
    );
    assert_eq!(found("q=caf&category=food").await, ["2026-10-02"]);
    assert_eq!(found("q=%25").await, ["2026-10-05"], "% is literal");
    assert_eq!(found("q=c_r").await, Vec::<String>::new(), "_ is literal");
    assert_eq!(found("q=caf&limit=1&to=2026-10-02").await, ["2026-10-02"]);
    assert_eq!(found("q=%00").await, Vec::<String>::new());
    let long = "x".repeat(201);
    app.get(&format!("/api/expenses?q={long}"), &token)
        .await
        .assert_error(400, "bad_request");
}

async fn categories_list_counts_and_rename_merges(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    app.add(&token, "coffee", json!("3.00"), "2026-10-01").await;
    app.add(&token, "Coffee", json!("2.50"), "2026-10-05").await;
    app.add(&token, "Drinks", json!("7.00"), "2026-09-01").await;
    app.add(&token, "Rent", json!("900"), "2026-10-01").await;
    let list = app.get("/api/categories", &token).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(
        list.body["categories"],
        json!([
            {"category": "coffee", "count": 2, "total": "5.50", "last_used": "2026-10-05"},
            {"category": "Drinks", "count": 1, "total": "7.00", "last_used": "2026-09-01"},
            {"category": "Rent", "count": 1, "total": "900.00", "last_used": "2026-10-01"},
        ])
    );
    let renamed = app
        .post(
            "/api/categories/rename",
            Some(&token),
            json!({"from": "COFFEE", "to": "Drinks"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body, json!({"category": "Drinks", "moved": 2}));
    let summary = summary_of(&app, &token).await;
    assert_eq!(
        summary["categories"],
        json!([
            {"category": "Rent", "total": "900.00", "count": 1},
            {"category": "Drinks", "total": "12.50", "count": 3},
        ])
    );
    let listed = app.get("/api/expenses?category=drinks", &token).await;
    let names: Vec<&str> = listed.body["expenses"]
        .as_array()
        .expect("expenses")
        .iter()
        .map(|e| e["category"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["Drinks", "Drinks", "Drinks"]);
    // A change of case only renames.
    let recased = app
        .post(
            "/api/categories/rename",
            Some(&token),
            json!({"from": "rent", "to": "RENT"}),
        )
        .await;
    assert_eq!(recased.body["moved"], 1);
    let list = app.get("/api/categories", &token).await.body;
    assert_eq!(list["categories"][1]["category"], "RENT");
    app.post(
        "/api/categories/rename",
        Some(&token),
        json!({"from": "nothing here", "to": "x"}),
    )
    .await
    .assert_error(404, "not_found");
    let bad = app
        .post(
            "/api/categories/rename",
            Some(&token),
            json!({"from": "Drinks", "to": ""}),
        )
        .await;
    bad.assert_error(422, "validation_failed");
    assert!(bad.body["fields"]["to"].is_string());
}

async fn trend_shows_every_month_and_is_cached(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    app.add(&token, "Food", json!("10.00"), "2026-08-31").await;
    app.add(&token, "Food", json!("1.00"), "2026-10-01").await;
    app.add(&token, "Rent", json!("900"), "2026-10-31").await;
    app.add(&token, "Food", json!("99.00"), "2026-11-01").await;
    let path = "/api/expenses/trend?months=3&end=2026-10-15";
    let first = app.get(path, &token).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.header("x-cache"), Some("miss"));
    assert_eq!(
        first.body,
        json!({
            "from": "2026-08-01",
            "to": "2026-10-31",
            "months": [
                {"month": "2026-08", "total": "10.00", "count": 1,
                 "categories": [{"category": "Food", "total": "10.00", "count": 1}]},
                {"month": "2026-09", "total": "0.00", "count": 0, "categories": []},
                {"month": "2026-10", "total": "901.00", "count": 2,
                 "categories": [
                    {"category": "Rent", "total": "900.00", "count": 1},
                    {"category": "Food", "total": "1.00", "count": 1}]},
            ]
        })
    );
    let second = app.get(path, &token).await;
    assert_eq!(second.header("x-cache"), Some("hit"));
    assert_eq!(second.body, first.body);
    app.add(&token, "Food", json!("2.00"), "2026-09-10").await;
    let after = app.get(path, &token).await;
    assert_eq!(after.header("x-cache"), Some("miss"));
    assert_eq!(after.body["months"][1]["total"], "2.00");
    let default = app.get("/api/expenses/trend", &token).await;
    assert_eq!(default.body["months"].as_array().map(Vec::len), Some(12));
    for bad in ["months=0", "months=37", "months=x", "end=2026-13-01"] {
        app.get(&format!("/api/expenses/trend?{bad}"), &token)
            .await
            .assert_error(400, "bad_request");
    }
}

/// Reads a CSV export into rows of (spent_on, category, description, amount).
fn export_rows(text: &str) -> Vec<[String; 4]> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "id",
            "spent_on",
            "category",
            "description",
            "amount",
            "source"
        ]
    );
    let mut rows: Vec<[String; 4]> = reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            [r[1].into(), r[2].into(), r[3].into(), r[4].into()]
        })
        .collect();
    rows.sort();
    rows
}

async fn export_streams_every_expense_and_reimports_without_duplicates(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.new_user().await;
    // More than one batch of the export, and descriptions a CSV must quote.
    for seed in [1, 2] {
        let reply = app
            .post(
                "/api/imports/mock",
                Some(&alice),
                json!({"seed": seed, "count": 600}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    for description in [
        "comma, inside",
        "quote \" inside",
        "new\nline",
        "€ and ünïcode",
    ] {
        let reply = app
            .post(
                "/api/expenses",
                Some(&alice),
                json!({"category": "Odd", "amount": "0.01", "description": description, "spent_on": "2026-01-01"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let (status, headers, csv_text) = app.get_text("/api/expenses/export", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    let rows = export_rows(&csv_text);
    assert_eq!(rows.len(), 1204);

    let (_, _, json_text) = app
        .get_text(
            "/api/expenses/export?format=json&from=2026-01-01&to=2026-01-01",
            &alice,
        )
        .await;
    let only_odd: Vec<Value> = serde_json::from_str(&json_text).expect("a JSON array");
    assert_eq!(only_odd.len(), 4);
    let (_, _, empty) = app
        .get_text(
            "/api/expenses/export?format=json&from=1990-01-01&to=1990-01-01",
            &alice,
        )
        .await;
    assert_eq!(empty, "[]");

    // Into another account: the same expenses, and a second import adds none.
    let bob = app.new_user().await;
    let into_bob = import_csv(&app, &bob, &csv_text).await;
    assert_eq!(into_bob.status, StatusCode::CREATED, "{}", into_bob.body);
    assert_eq!(into_bob.body["imported"], 1204);
    assert_eq!(into_bob.body["errors"], json!([]));
    let (_, _, bob_csv) = app.get_text("/api/expenses/export", &bob).await;
    assert!(
        export_rows(&bob_csv) == rows,
        "Bob's export differs from Alice's"
    );
    assert_eq!(
        summary_of(&app, &bob).await["total"],
        summary_of(&app, &alice).await["total"]
    );
    let twice = import_csv(&app, &bob, &csv_text).await;
    assert_eq!(imported_skipped(&twice), (json!(0), json!(1204)));
    // Bob's own export read back into Bob, and Alice's into Alice: nothing new.
    let own = import_csv(&app, &bob, &bob_csv).await;
    assert_eq!(own.body["imported"], 0);
    let back = import_csv(&app, &alice, &csv_text).await;
    assert_eq!(imported_skipped(&back), (json!(0), json!(1204)));
    assert_eq!(summary_of(&app, &alice).await["count"], 1204);
}

/// A bank file of `rows` purchases in which every tenth row repeats the one
/// before it (two coffees on one day), over about three years, with the sum
/// of its purchases in cents.
fn large_bank_csv(rows: u32) -> (String, i64) {
    let mut text = String::from("date,amount,description,category\n");
    let mut total = 0i64;
    let mut previous = String::new();
    for i in 0..rows {
        let line = if i % 10 == 9 {
            previous.clone()
        } else {
            let day = 1 + (i % 28);
            let month = 1 + (i / 28) % 12;
            let year = 2024 + (i / 336) % 3;
            let amount = 1 + i64::from(i % 9_973);
            format!(
                "{year}-{month:02}-{day:02},-{}.{:02},Shop {},Cat {}\n",
                amount / 100,
                amount % 100,
                i % 1_000,
                i % 50
            )
        };
        let amount = line.split(',').nth(1).expect("amount");
        total -= cents(&json!(amount));
        text.push_str(&line);
        previous = line;
    }
    (text, total)
}

async fn an_export_of_100000_expenses_reimports_without_duplicates(backend: Backend) {
    const ROWS: u32 = 100_000;
    let app = spawn_app(backend).await;
    let alice = app.new_user().await;
    let (file, cents_out) = large_bank_csv(ROWS);
    let first = app
        .upload("/api/imports/csv", &alice, "text/csv", file.into_bytes())
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["imported"], ROWS, "{}", first.body["errors"]);
    let alice_summary = summary_of(&app, &alice).await;
    assert_eq!(alice_summary["count"], ROWS);
    assert_eq!(cents(&alice_summary["total"]), cents_out);

    let (status, _, exported) = app.get_text("/api/expenses/export", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        exported.lines().count(),
        ROWS as usize + 1,
        "a header and every row"
    );

    let bob = app.new_user().await;
    let into_bob = import_csv(&app, &bob, &exported).await;
    assert_eq!(
        into_bob.status,
        StatusCode::CREATED,
        "{}",
        into_bob.body["errors"]
    );
    assert_eq!(
        (
            into_bob.body["imported"].clone(),
            into_bob.body["errors"].clone()
        ),
        (json!(ROWS), json!([]))
    );
    let bob_summary = summary_of(&app, &bob).await;
    assert_eq!(bob_summary["categories"], alice_summary["categories"]);
    assert_eq!(bob_summary["total"], alice_summary["total"]);

    for (who, token) in [("bob", &bob), ("alice", &alice)] {
        let again = import_csv(&app, token, &exported).await;
        assert_eq!(imported_skipped(&again), (json!(0), json!(ROWS)), "{who}");
        assert_eq!(summary_of(&app, token).await["count"], ROWS, "{who}");
    }
}

/// OFX fixtures: (file, transactions, Σ TRNAMT in cents) from SOURCES.md.
const OFX_FIXTURES: [(&str, u64, i64); 10] = [
    ("sgml102_cad_checking_compact.ofx", 3, -34_527),
    ("sgml102_banco_do_brasil_latin1.ofx", 81, 659_275),
    ("sgml102_checking_crlf_106txns.ofx", 106, 464_442),
    ("sgml102_nubank_creditcard_brl.ofx", 6, -128_091),
    ("sgml102_sparkasse_comment_header_utf8.ofx", 2, -111_156),
    ("sgml102_bradesco_decimal_comma.ofx", 6, -216_681),
    ("xml200_suncorp_crlf_cdata.ofx", 1, -1685),
    ("xml200_decimal_comma.ofx", 2, -50_000),
    ("xml200_savings_basic.ofx", 3, 25_000),
    ("qfx102_bmo_mastercard_no_blank_line.qfx", 1, 204_224),
];

/// Imports a file twice after a dry run: checks the totals, that the dry run
/// wrote nothing and foretold the import, and that the second import adds nothing.
async fn import_twice(
    app: &TestApp,
    token: &str,
    path: &str,
    bytes: Vec<u8>,
    count: u64,
    sum: i64,
) {
    let before = summary_of(app, token).await["count"]
        .as_u64()
        .expect("count");
    let dry = app
        .upload(
            &format!("{path}dry_run=true"),
            token,
            "application/octet-stream",
            bytes.clone(),
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{path}: {}", dry.body);
    assert_eq!(dry.body["dry_run"], true);
    assert_eq!(dry.body["transactions"], count, "{path}: {}", dry.body);
    assert_eq!(dry.body["errors"], json!([]), "{path}");
    assert_eq!(
        cents(&dry.body["money_out"]) + cents(&dry.body["money_in"]),
        sum,
        "{path}"
    );
    assert_eq!(
        summary_of(app, token).await["count"],
        before,
        "a dry run writes nothing"
    );
    let out: i64 = dry.body["expenses"]
        .as_array()
        .expect("expenses")
        .iter()
        .map(|e| cents(&e["amount"]))
        .sum();
    assert_eq!(-out, cents(&dry.body["money_out"]), "{path}");

    let real = app
        .upload(path, token, "application/octet-stream", bytes.clone())
        .await;
    assert_eq!(real.status, StatusCode::CREATED, "{path}: {}", real.body);
    assert_eq!(real.body["imported"], dry.body["imported"], "{path}");
    assert_eq!(
        real.body["imported"].as_u64().unwrap_or(0) + real.body["ignored"].as_u64().unwrap_or(0),
        count,
        "{path}"
    );
    let again = app
        .upload(path, token, "application/octet-stream", bytes)
        .await;
    assert_eq!(again.body["imported"], 0, "{path}: {}", again.body);
    assert_eq!(again.body["skipped"], real.body["imported"], "{path}");
}

async fn ofx_fixtures_reproduce_their_counts_and_totals(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    for (file, count, sum) in OFX_FIXTURES {
        import_twice(&app, &token, "/api/imports/ofx?", fixture(file), count, sum).await;
    }
    // The raw `&` of "PG&E" and Latin-1 bytes come through as text.
    let list = app.get("/api/expenses?q=pg%26e&limit=1", &token).await;
    assert_eq!(list.body["expenses"][0]["source"], "ofx");
    let list = app.get("/api/expenses?q=cart%C3%A3o&limit=1", &token).await;
    assert_eq!(
        list.body["expenses"].as_array().map(Vec::len),
        Some(1),
        "{}",
        list.body
    );
    let not_ofx = app
        .upload(
            "/api/imports/ofx",
            &token,
            "application/x-ofx",
            b"date,amount\n".to_vec(),
        )
        .await;
    not_ofx.assert_error(422, "validation_failed");
    assert!(not_ofx.body["fields"]["file"].is_string());
}

async fn csv_fixtures_reproduce_their_counts_and_totals(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let cases: [(&str, &str, u64, i64); 4] = [
        (
            "csv_ing_de_preamble_semicolon_latin1.csv",
            "date=Buchung&amount=Betrag&description=Auftraggeber%2FEmpf%C3%A4nger",
            9,
            -17_860,
        ),
        (
            "csv_lloyds_debit_credit_columns.csv",
            "date=Transaction+Date&date_format=%25d%2F%25m%2F%25Y&debit=Debit+Amount&credit=Credit+Amount&description=Transaction+Description",
            12,
            -388_199,
        ),
        (
            "csv_chase_style_signed_amount.csv",
            "date=Posting+Date&date_format=%25m%2F%25d%2F%25Y&amount=Amount&description=Description",
            6,
            -149_016,
        ),
        (
            "csv_knab_nl_creditdebet_flag.csv",
            "date=Transactiedatum&date_format=%25d-%25m-%25Y&amount=Bedrag&direction=CreditDebet&out_value=D&description=Tegenrekeninghouder&id=Referentie&decimal=comma",
            28,
            701,
        ),
    ];
    for (file, mapping, count, sum) in cases {
        import_twice(
            &app,
            &token,
            &format!("/api/imports/csv?{mapping}&"),
            fixture(file),
            count,
            sum,
        )
        .await;
    }
    let ing = app.get("/api/expenses?q=paydude&limit=1", &token).await;
    assert_eq!(ing.body["expenses"][0]["amount"], "5.50");
    assert_eq!(ing.body["expenses"][0]["spent_on"], "2018-12-28");
    assert_eq!(ing.body["expenses"][0]["category"], "Uncategorized");
}

/// Runs one statement on a test server's database behind its back, as an
/// older server left the data; returns the rows it changed.
async fn execute_on(backend: Backend, url: &str, sql: &str) -> u64 {
    let done = match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.expect("sqlite");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .map(|r| r.rows_affected())
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.expect("postgres");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .map(|r| r.rows_affected())
        }
        Backend::Mysql => {
            let pool = sqlx::MySqlPool::connect(url).await.expect("mysql");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .map(|r| r.rows_affected())
        }
    };
    done.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Servers before the dated fingerprints stored `fp:<sha256>:<n>`: a file
/// they imported is not imported again, and a row deleted since stays out.
async fn csv_rows_an_older_server_imported_or_saw_deleted_stay_out(backend: Backend) {
    let mut url = String::new();
    let app = spawn_app_with(backend, |spec| url = spec.database_url.clone()).await;
    let token = app.new_user().await;
    let file =
        "date,amount,description\n2026-11-02,-12.34,  Coffee   SHOP \n2026-11-03,-4.50,Bakery\n";
    let first = import_csv(&app, &token, file).await;
    assert_eq!(
        imported_skipped(&first),
        (json!(2), json!(0)),
        "{}",
        first.body
    );
    let bakery = first.body["expenses"][1]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // The ids an older server gave these two rows.
    let coffee_id = "fp:aeec5fa44873c4afbd345666d5a8f0dcb8ddff61c32dfbbed168c8e8eaadc258:1";
    let bakery_id = format!(
        "fp:{:x}:1",
        <sha2::Sha256 as sha2::Digest>::digest(b"2026-11-03|-450|bakery")
    );
    for (day, id) in [("2026-11-02", coffee_id), ("2026-11-03", &bakery_id)] {
        let sql = format!(
            "UPDATE expenses SET external_id = '{id}' WHERE source = 'csv' AND spent_on = '{day}'"
        );
        assert_eq!(execute_on(backend, &url, &sql).await, 1, "{sql}");
    }
    let gone = app.delete(&format!("/api/expenses/{bakery}"), &token).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);

    let again = import_csv(&app, &token, file).await;
    assert_eq!(
        imported_skipped(&again),
        (json!(0), json!(2)),
        "{}",
        again.body
    );
    let more = import_csv(&app, &token, &format!("{file}2026-11-04,-1.00,Paper\n")).await;
    assert_eq!(
        imported_skipped(&more),
        (json!(1), json!(2)),
        "{}",
        more.body
    );
    assert_eq!(summary_of(&app, &token).await["count"], 2);
}

async fn csv_identical_rows_are_distinct_expenses_imported_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let two = "date,amount,description\n2026-11-02,-3.80,Coffee\n2026-11-02,-3.80,Coffee\n";
    let first = app
        .upload(
            "/api/imports/csv?default_category=Coffee",
            &token,
            "text/csv",
            two.into(),
        )
        .await;
    assert_eq!(first.body["imported"], 2, "{}", first.body);
    let again = app
        .upload(
            "/api/imports/csv?default_category=Coffee",
            &token,
            "text/csv",
            two.into(),
        )
        .await;
    assert_eq!(imported_skipped(&again), (json!(0), json!(2)));
    let three = format!("{two}2026-11-02,-3.80,Coffee\n");
    let more = app
        .upload(
            "/api/imports/csv?default_category=Coffee",
            &token,
            "text/csv",
            three.into(),
        )
        .await;
    assert_eq!(imported_skipped(&more), (json!(1), json!(2)));
    let summary = summary_of(&app, &token).await;
    assert_eq!(
        summary["categories"],
        json!([{"category": "Coffee", "total": "11.40", "count": 3}])
    );
}

async fn csv_bad_lines_are_reported_and_strict_imports_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let file = "date,amount,description,category\n\
                2026-11-01,-1.00,ok,Food\n\
                2026-13-01,-2.00,bad date,Food\n\
                2026-11-02,-abc,bad amount,Food\n\
                2026-11-03,-3.005,three decimals,Food\n\
                2026-11-04,-4.00,bad category,\u{7}\n\
                2026-11-05,-5.00,ok,Food\n";
    let strict = app
        .upload(
            "/api/imports/csv?strict=true",
            &token,
            "text/csv",
            file.into(),
        )
        .await;
    strict.assert_error(422, "validation_failed");
    for line in ["line 3", "line 4", "line 5", "line 6"] {
        assert!(
            strict.body["fields"][line].is_string(),
            "{line}: {}",
            strict.body
        );
    }
    assert_eq!(
        summary_of(&app, &token).await["count"],
        0,
        "strict wrote nothing"
    );
    let lenient = app
        .upload("/api/imports/csv", &token, "text/csv", file.into())
        .await;
    assert_eq!(lenient.status, StatusCode::CREATED);
    assert_eq!(lenient.body["imported"], 2);
    let lines: Vec<u64> = lenient.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["line"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(lines, [3, 4, 5, 6]);
    let unmapped = app
        .upload(
            "/api/imports/csv",
            &token,
            "text/csv",
            b"when,how much\nx,1\n".to_vec(),
        )
        .await;
    unmapped.assert_error(422, "validation_failed");
    let wrong_type = app
        .upload(
            "/api/imports/csv",
            &token,
            "application/json",
            b"{}".to_vec(),
        )
        .await;
    wrong_type.assert_error(415, "unsupported_media_type");
    app.upload(
        "/api/imports/csv?dry_run=maybe",
        &token,
        "text/csv",
        file.into(),
    )
    .await
    .assert_error(400, "bad_request");
}

async fn csv_reads_a_bom_legacy_bytes_and_multipart(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let mut bom = b"\xEF\xBB\xBFDate;Amount;Text\n".to_vec();
    bom.extend_from_slice("22.11.2026;-1.234,50;Caf\u{e9} \u{20ac}\n".as_bytes());
    let utf8 = app
        .upload(
            "/api/imports/csv?date=Date&amount=Amount&description=Text",
            &token,
            "text/csv",
            bom,
        )
        .await;
    assert_eq!(utf8.status, StatusCode::CREATED, "{}", utf8.body);
    assert_eq!(utf8.body["expenses"][0]["amount"], "1234.50");
    assert_eq!(utf8.body["expenses"][0]["description"], "Café €");
    // Windows-1252: é is 0xE9 and € is 0x80.
    let cp1252 = b"Date;Amount;Text\n23.11.2026;-2,00;Caf\xE9 \x80\n".to_vec();
    let legacy = app
        .upload(
            "/api/imports/csv?date=Date&amount=Amount&description=Text",
            &token,
            "text/csv",
            cp1252,
        )
        .await;
    assert_eq!(
        legacy.body["expenses"][0]["description"], "Café €",
        "{}",
        legacy.body
    );
    // The same mapping as form fields, the file as a part.
    let form = reqwest::multipart::Form::new()
        .text("date", "1")
        .text("amount", "2")
        .text("description", "3")
        .text("decimal", "comma")
        .text("date_format", "%d.%m.%Y")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"Datum;Betrag;Text\n04.11.2026;-7,25;Form\n".to_vec())
                .file_name("bank.csv"),
        );
    let res = app
        .http
        .post(format!("{}/api/imports/csv", app.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("request");
    let reply = common::Reply::from_response(res).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        reply.body["expenses"][0]["amount"], "7.25",
        "{}",
        reply.body
    );
    assert_eq!(reply.body["expenses"][0]["spent_on"], "2026-11-04");
}

async fn listed_pages_are_cached_and_every_write_shows_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let other = app.new_user().await;
    let first = app.add(&token, "Food", json!("4.10"), "2026-10-01").await;
    let amounts = |reply: &common::Reply| -> Vec<String> {
        reply.body["expenses"]
            .as_array()
            .expect("expenses")
            .iter()
            .map(|e| e["amount"].as_str().expect("amount").to_owned())
            .collect()
    };
    let page = app.get("/api/expenses?limit=50", &token).await;
    assert_eq!(page.header("x-cache"), Some("miss"));
    let again = app.get("/api/expenses?limit=50", &token).await;
    assert_eq!(again.header("x-cache"), Some("hit"));
    assert_eq!(again.body, page.body);
    // Another page shape, or another user, is another entry.
    let small = app.get("/api/expenses?limit=1&category=food", &token).await;
    assert_eq!(small.header("x-cache"), Some("miss"));
    let theirs = app.get("/api/expenses?limit=50", &other).await;
    assert_eq!(theirs.body["expenses"], json!([]));

    app.add(&token, "Rent", json!("900"), "2026-10-02").await;
    let after_add = app.get("/api/expenses?limit=50", &token).await;
    assert_eq!(amounts(&after_add), ["900.00", "4.10"]);
    let path = format!("/api/expenses/{}", first["id"].as_str().expect("id"));
    app.patch(&path, &token, json!({"amount": "5.20"})).await;
    let after_edit = app.get("/api/expenses?limit=50", &token).await;
    assert_eq!(amounts(&after_edit), ["900.00", "5.20"]);
    app.delete(&path, &token).await;
    let after_delete = app.get("/api/expenses?limit=50", &token).await;
    assert_eq!(amounts(&after_delete), ["900.00"]);
    let renamed = app
        .post(
            "/api/categories/rename",
            Some(&token),
            json!({"from": "Rent", "to": "Housing"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    let after_rename = app.get("/api/expenses?limit=50", &token).await;
    assert_eq!(after_rename.body["expenses"][0]["category"], "Housing");
    assert_eq!(after_rename.header("x-cache"), Some("miss"));
}

async fn summary_of_any_range_adds_up_its_days_and_months(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    // (day, category, cents): month edges, a leap day, two years.
    let mut kept: Vec<(&str, &str, i64)> = Vec::new();
    let days = [
        "2024-02-28",
        "2024-02-29",
        "2024-03-01",
        "2025-12-31",
        "2026-01-01",
        "2026-01-15",
        "2026-01-31",
        "2026-02-01",
        "2026-02-27",
        "2026-03-31",
        "2026-04-01",
    ];
    let mut doomed = Vec::new();
    for (i, day) in days.iter().enumerate() {
        let category = ["Food", "Rent", "Travel"][i % 3];
        let cents = 100 * (i as i64 + 1) + 7;
        let amount = format!("{}.{:02}", cents / 100, cents % 100);
        let created = app.add(&token, category, json!(amount), day).await;
        if i % 4 == 3 {
            doomed.push(created["id"].as_str().expect("id").to_owned());
        } else {
            kept.push((day, category, cents));
        }
    }
    for id in &doomed {
        let gone = app.delete(&format!("/api/expenses/{id}"), &token).await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT);
    }
    let renamed = app
        .post(
            "/api/categories/rename",
            Some(&token),
            json!({"from": "Travel", "to": "Food"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    let bounds = [
        None,
        Some("2024-02-29"),
        Some("2024-03-01"),
        Some("2025-12-31"),
        Some("2026-01-01"),
        Some("2026-01-16"),
        Some("2026-01-31"),
        Some("2026-02-28"),
        Some("2026-04-01"),
    ];
    for from in bounds {
        for to in bounds {
            let mut query = Vec::new();
            if let Some(f) = from {
                query.push(format!("from={f}"));
            }
            if let Some(t) = to {
                query.push(format!("to={t}"));
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            if from.zip(to).is_some_and(|(f, t)| f > t) {
                continue;
            }
            let summary = app.summary(&token, &query).await;
            let inside: Vec<_> = kept
                .iter()
                .filter(|(d, _, _)| from.is_none_or(|f| *d >= f) && to.is_none_or(|t| *d <= t))
                .collect();
            let cents: i64 = inside.iter().map(|(_, _, c)| c).sum();
            let total = format!("{}.{:02}", cents / 100, cents % 100);
            assert_eq!(summary.body["total"], total, "total of {query}");
            assert_eq!(summary.body["count"], inside.len(), "count of {query}");
            let rent: i64 = inside
                .iter()
                .filter(|(_, c, _)| *c == "Rent")
                .map(|(_, _, c)| c)
                .sum();
            let listed = summary.body["categories"]
                .as_array()
                .expect("categories")
                .iter()
                .find(|c| c["category"] == "Rent")
                .map(|c| c["total"].clone());
            let expected = (rent > 0).then(|| json!(format!("{}.{:02}", rent / 100, rent % 100)));
            assert_eq!(listed, expected, "Rent of {query}");
        }
    }
}
