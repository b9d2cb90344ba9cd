//! What one ordinary account could do to a server shared by many: bursts
//! against the throttles, dates and cursors no store can hold, and exports a
//! spreadsheet would run.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{Backend, Reply, TestApp, spawn_app, spawn_app_with, unique_email};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_every_backend!(
    a_parallel_login_burst_checks_at_most_the_limit,
    a_parallel_password_change_burst_is_throttled,
    out_of_range_dates_are_refused_and_every_user_still_writes,
    a_forged_cursor_is_a_bad_request,
    a_background_import_with_an_out_of_range_date_reports_it_and_the_next_job_runs,
    long_bank_ids_are_kept_whole_or_refused_by_line,
);

const OUT_OF_RANGE: [&str; 6] = [
    "+10000-01-01",
    "-0001-01-01",
    "0000-01-01",
    "0999-12-31",
    "1899-12-31",
    "3000-01-01",
];

/// 5 failures per email, 20 per address: the defaults.
fn default_limits(spec: &mut common::Spec) {
    spec.login_limits = finance_server::auth::LoginLimits::default();
}

/// Sends `n` requests at once and returns their answers.
async fn burst<F, Fut>(n: usize, send: F) -> Vec<Reply>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(send(i))).collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("request task"));
    }
    replies
}

fn count(replies: &[Reply], status: u16) -> usize {
    replies
        .iter()
        .filter(|r| r.status.as_u16() == status)
        .count()
}

async fn a_parallel_login_burst_checks_at_most_the_limit(backend: Backend) {
    let app = spawn_app_with(backend, default_limits).await;
    let email = unique_email();
    app.register(&email, "the real password").await;
    let replies = burst(60, |i| {
        let http = app.http.clone();
        let url = format!("{}/api/auth/login", app.base);
        let password = if i == 59 {
            "the real password"
        } else {
            "guess"
        };
        let body = json!({"email": email, "password": password});
        async move {
            Reply::from_response(http.post(url).json(&body).send().await.expect("login")).await
        }
    })
    .await;
    let checked = count(&replies, 401) + count(&replies, 200);
    assert!(checked <= 5, "{checked} passwords were checked");
    assert_eq!(checked + count(&replies, 429), 60);
    for reply in replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
    {
        reply.assert_error(429, "rate_limited");
        assert!(reply.header("retry-after").is_some());
    }
}

async fn a_parallel_password_change_burst_is_throttled(backend: Backend) {
    let app = spawn_app_with(backend, default_limits).await;
    let email = unique_email();
    let token = app.register(&email, "the real password").await;
    let replies = burst(100, |i| {
        let http = app.http.clone();
        let url = format!("{}/api/auth/password", app.base);
        let token = token.clone();
        let body = json!({"current_password": format!("guess {i}"), "new_password": "taken over!"});
        async move {
            let res = http.post(url).bearer_auth(token).json(&body).send().await;
            Reply::from_response(res.expect("password change")).await
        }
    })
    .await;
    let checked = count(&replies, 401);
    assert!(checked <= 5, "{checked} current passwords were checked");
    assert_eq!(checked + count(&replies, 429), 100);
    // Even the right password waits now, and the victim's token still works.
    let right = app
        .post(
            "/api/auth/password",
            Some(&token),
            json!({"current_password": "the real password", "new_password": "taken over!"}),
        )
        .await;
    right.assert_error(429, "rate_limited");
    assert_eq!(app.get("/api/auth/me", &token).await.status, StatusCode::OK);
}

async fn out_of_range_dates_are_refused_and_every_user_still_writes(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let kept = app.add(&alice, "Food", json!("1.00"), "2026-01-01").await;
    let id = kept["id"].as_str().expect("id");
    for day in OUT_OF_RANGE {
        let created = app
            .post(
                "/api/expenses",
                Some(&alice),
                json!({"category": "Far", "amount": "1.00", "spent_on": day}),
            )
            .await;
        created.assert_error(422, "validation_failed");
        let why = created.body["fields"]["spent_on"].as_str().unwrap_or("");
        assert!(why.contains("1900-01-01"), "{day}: {}", created.body);
        let patched = app
            .patch(
                &format!("/api/expenses/{id}"),
                &alice,
                json!({"spent_on": day}),
            )
            .await;
        patched.assert_error(422, "validation_failed");
        for query in [
            format!("/api/expenses?from={day}"),
            format!("/api/expenses/summary?to={day}"),
            format!("/api/expenses/trend?end={day}"),
            format!("/api/expenses/export?from={day}"),
        ] {
            app.get(&query, &alice)
                .await
                .assert_error(400, "bad_request");
        }
    }
    // The edges are accepted, and the summary counts what the list shows.
    for day in ["1900-01-01", "2999-12-31"] {
        app.add(&alice, "Edge", json!("2.00"), day).await;
    }
    let summary = app.summary(&alice, "").await.body;
    assert_eq!(
        (summary["count"].clone(), summary["total"].clone()),
        (json!(3), json!("5.00"))
    );
    let list = app.get("/api/expenses", &alice).await.body;
    assert_eq!(list["expenses"][0]["spent_on"], "2999-12-31");
    assert_eq!(list["expenses"][2]["spent_on"], "1900-01-01");
    // Nothing above stopped the shared writer: another user's write lands.
    let other = app.add(&bob, "Rent", json!("700.00"), "2026-02-01").await;
    assert_eq!(other["amount"], "700.00");
}

async fn a_forged_cursor_is_a_bad_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    app.add(&token, "Food", json!("1.00"), "2026-01-01").await;
    let id = uuid::Uuid::now_v7();
    let forge = |raw: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    for raw in [
        format!("2026-01-01|{}|{id}", i64::MAX),
        format!("2026-01-01|{}|{id}", i64::MIN),
        format!("+200000-01-01|1764000000123456|{id}"),
        format!("-4714-01-01|1764000000123456|{id}"),
        format!("2026-01-01|-62167219200000000|{id}"),
    ] {
        let reply = app
            .get(
                &format!("/api/expenses?cursor={}", forge(raw.clone())),
                &token,
            )
            .await;
        reply.assert_error(400, "bad_request");
        assert!(
            reply.body["message"]
                .as_str()
                .unwrap_or("")
                .contains("cursor"),
            "{raw}"
        );
    }
    let fine = forge(format!("2026-01-02|1764000000123456|{id}"));
    let page = app
        .get(&format!("/api/expenses?cursor={fine}"), &token)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body["expenses"].as_array().map(Vec::len), Some(1));
}

/// Two bank ids of the longest length kept, differing only in their last
/// character, are two transactions on every engine (none truncates them),
/// and a longer one is refused by line, not cut.
async fn long_bank_ids_are_kept_whole_or_refused_by_line(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let prefix = "F".repeat(254);
    let file = format!(
        "date,amount,description,Ref\n\
         2026-11-01,-1.00,First,{prefix}a\n\
         2026-11-01,-2.00,Second,{prefix}b\n\
         2026-11-01,-4.00,Third,{}\n",
        "F".repeat(700)
    );
    let import = |file: String| {
        app.upload(
            "/api/imports/csv?date=date&amount=amount&description=description&id=Ref",
            &token,
            "text/csv",
            file.into_bytes(),
        )
    };
    let first = import(file.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["imported"], 2, "{}", first.body);
    assert_eq!(first.body["errors"][0]["line"], 4, "{}", first.body);
    // Again: both are known by their whole ids.
    let again = import(file).await;
    assert_eq!(
        (
            again.body["imported"].clone(),
            again.body["skipped"].clone()
        ),
        (json!(0), json!(2)),
        "{}",
        again.body
    );
    assert_eq!(app.summary(&token, "").await.body["total"], "3.00");
}

/// Polls a job until it has ended.
async fn job_end(app: &TestApp, token: &str, url: &str) -> Value {
    for _ in 0..1200 {
        let reply = app.get(url, token).await;
        if matches!(reply.body["status"].as_str(), Some("succeeded" | "failed")) {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the job at {url} has not ended");
}

async fn a_background_import_with_an_out_of_range_date_reports_it_and_the_next_job_runs(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let token = app.new_user().await;
    let file = "date,amount,description\n2026-11-01,-5.50,Coffee\n3000-01-01,-1.00,Far\n0999-12-31,-1.00,Old\n2026-11-03,-7.25,Lunch\n";
    let queued = app
        .upload(
            "/api/imports/csv?async=true",
            &token,
            "text/csv",
            file.into(),
        )
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    let lines: Vec<&Value> = queued.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| &e["line"])
        .collect();
    assert_eq!(lines, [&json!(3), &json!(4)], "{}", queued.body);
    let url = queued.body["status_url"].as_str().expect("status_url");
    let done = job_end(&app, &token, url).await;
    assert_eq!(
        (done["status"].clone(), done["imported"].clone()),
        (json!("succeeded"), json!(2))
    );
    // The worker goes on with the next job.
    let next = app
        .upload(
            "/api/imports/csv?async=true",
            &token,
            "text/csv",
            "date,amount,description\n2026-11-04,-3.00,Bus\n".into(),
        )
        .await;
    let url = next.body["status_url"].as_str().expect("status_url");
    assert_eq!(job_end(&app, &token, url).await["imported"], 1);
    assert_eq!(app.summary(&token, "").await.body["total"], "15.75");
}

/// Texts a spreadsheet would run are exported guarded, and this server's
/// export imported again gives them back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_guards_formulas_and_reimports_them_unchanged() {
    let app = spawn_app(Backend::Sqlite).await;
    let alice = app.new_user().await;
    let texts = [
        ("=HYPERLINK(\"http://x.test\",\"pay\")", "+1+2"),
        ("@SUM(A1)", "-2+3"),
        ("'=quoted", "\tTabbed"),
        ("Plain", "=1"),
    ];
    for (category, description) in texts {
        let reply = app
            .post(
                "/api/expenses",
                Some(&alice),
                json!({"category": category, "description": description, "amount": "1.00", "spent_on": "2026-01-01"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let (status, _, exported) = app.get_text("/api/expenses/export", &alice).await;
    assert_eq!(status, StatusCode::OK);
    let mut reader = csv::Reader::from_reader(exported.as_bytes());
    for record in reader.records() {
        let record = record.expect("row");
        for cell in [&record[2], &record[3]] {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a cell a spreadsheet would run: {cell:?}"
            );
        }
    }
    let bob = app.new_user().await;
    let imported = app
        .upload("/api/imports/csv", &bob, "text/csv", exported.into())
        .await;
    assert_eq!(imported.body["imported"], 4, "{}", imported.body);
    let mut back: Vec<(String, String)> = app.get("/api/expenses", &bob).await.body["expenses"]
        .as_array()
        .expect("expenses")
        .iter()
        .map(|e| {
            (
                e["category"].as_str().unwrap_or_default().to_owned(),
                e["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    back.sort();
    let mut sent: Vec<(String, String)> = texts
        .iter()
        .map(|(c, d)| ((*c).to_owned(), (*d).to_owned()))
        .collect();
    sent.sort();
    assert_eq!(back, sent);
}

/// A 40 MB file of junk lines is refused with a short answer naming the
/// count; a good file with many bad lines keeps the first 100 and counts all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_errors_are_capped_and_a_junk_file_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.new_user().await;
    let line = "not a date,not an amount,padding padding padding padding padding\n";
    let junk = format!(
        "date,amount,description\n{}",
        line.repeat(40_000_000 / line.len())
    );
    let lines = junk.lines().count() - 1;
    for path in ["/api/imports/csv", "/api/imports/csv?async=true"] {
        let refused = app
            .upload(path, &token, "text/csv", junk.clone().into_bytes())
            .await;
        refused.assert_error(422, "validation_failed");
        let why = refused.body["fields"]["file"].as_str().unwrap_or("");
        assert!(
            why.starts_with(&format!("{lines} lines could not be read")),
            "{why}"
        );
        assert!(refused.body.to_string().len() < 1000, "{}", refused.body);
    }

    let mut mixed = String::from("date,amount,description\n2026-11-01,-5.50,Coffee\n");
    mixed.push_str(&line.repeat(5000));
    mixed.push_str("2026-11-02,-2.00,Tea\n");
    for path in ["/api/imports/csv", "/api/imports/csv?async=true"] {
        let reply = app
            .upload(path, &token, "text/csv", mixed.clone().into_bytes())
            .await;
        assert!(reply.status.is_success(), "{}", reply.body);
        let report = match reply.status {
            StatusCode::ACCEPTED => {
                job_end(
                    &app,
                    &token,
                    reply.body["status_url"].as_str().expect("url"),
                )
                .await
            }
            _ => reply.body,
        };
        assert_eq!(report["errors_total"], 5000, "{path}");
        let errors = report["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 100);
        assert_eq!(errors[0]["line"], 3);
        assert_eq!(errors[99]["line"], 102);
    }
    assert_eq!(app.summary(&token, "").await.body["total"], "7.50");
}

/// Amounts are read from their digits, categories in composed form without
/// invisible characters, a 413 names its route's limit, and a CSV option
/// that cannot take effect is refused rather than ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minor_inputs_are_read_exactly_or_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.new_user().await;
    let send = |body: String| {
        let http = app.http.clone();
        let url = format!("{}/api/expenses", app.base);
        let token = token.clone();
        async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            Reply::from_response(res.expect("request")).await
        }
    };
    let rounded = send(r#"{"category": "Food", "amount": 12.339999999999999999}"#.into()).await;
    rounded.assert_error(422, "validation_failed");
    assert!(
        rounded.body["fields"]["amount"]
            .as_str()
            .unwrap_or("")
            .contains("2 decimal"),
        "{}",
        rounded.body
    );
    let exact = send(r#"{"category": "Food", "amount": 12.34}"#.into()).await;
    assert_eq!(exact.body["amount"], "12.34", "{}", exact.body);
    let exponent = send(r#"{"category": "Food", "amount": 1.25e1}"#.into()).await;
    assert_eq!(exponent.body["amount"], "12.50", "{}", exponent.body);
    let not_a_string = send(r#"{"category": 12.5, "amount": 1}"#.into()).await;
    not_a_string.assert_error(422, "validation_failed");

    app.add(&token, "caf\u{e9}", json!("1.00"), "2026-01-01")
        .await;
    app.add(&token, "cafe\u{301}", json!("2.00"), "2026-01-01")
        .await;
    let summary = app.summary(&token, "").await.body;
    let cafe = summary["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| c["category"] == "caf\u{e9}")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (cafe["count"].clone(), cafe["total"].clone()),
        (json!(2), json!("3.00")),
        "{summary}"
    );
    for sneaky in ["Food\u{200B}", "\u{202E}dooF"] {
        let reply = app
            .post(
                "/api/expenses",
                Some(&token),
                json!({"category": sneaky, "amount": 1}),
            )
            .await;
        reply.assert_error(422, "validation_failed");
    }

    let big_json = send(format!(
        r#"{{"category": "{}", "amount": 1}}"#,
        "x".repeat(1_100_000)
    ))
    .await;
    big_json.assert_error(413, "payload_too_large");
    assert!(
        big_json.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("1 MiB")
    );
    let big_file = app
        .upload(
            "/api/imports/csv",
            &token,
            "text/csv",
            vec![b'x'; 65 * 1024 * 1024],
        )
        .await;
    big_file.assert_error(413, "payload_too_large");
    assert!(
        big_file.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("64 MiB"),
        "{}",
        big_file.body
    );

    let ignored = app
        .upload(
            "/api/imports/csv?id=Ref",
            &token,
            "text/csv",
            b"date,amount,Ref\n2026-01-01,-1.00,A1\n".to_vec(),
        )
        .await;
    ignored.assert_error(422, "validation_failed");
    assert!(ignored.body["fields"]["id"].is_string(), "{}", ignored.body);
}

/// One import takes at most a million transactions; past that the file is
/// refused whole, with the count, and nothing is imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_row_cap_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.new_user().await;
    let rows = finance_server::http::imports::IMPORT_ROWS_MAX + 1;
    let file = format!("date,amount\n{}", "2026-01-01,-1.00\n".repeat(rows));
    let refused = app
        .upload(
            "/api/imports/csv?dry_run=true",
            &token,
            "text/csv",
            file.into_bytes(),
        )
        .await;
    refused.assert_error(422, "validation_failed");
    let why = refused.body["fields"]["file"].as_str().unwrap_or("");
    assert!(
        why.starts_with(&format!("has {rows} transactions")),
        "{why}"
    );
}
