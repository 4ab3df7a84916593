//! The dashboard on the test bed, as `tests/cluster/install` runs it: behind the Service
//! `modelops-dashboard`, with `auth: kubernetes`. Who may see a namespace is who may list the four
//! kinds there. (What its pages show is checked in tests/serving.rs and tests/rollback.rs, in
//! headless Chromium.)

mod common;

use common::*;
use kube::api::PostParams;
use modelops_api::Dataset;

#[tokio::test]
async fn a_user_who_may_not_list_modeldeployments_in_a_namespace_gets_403_for_it() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "dashboard").await;
    // Something to show (its data is missing: it stalls, which is fine here).
    let dataset: Dataset = example("examples/digits/dataset.yaml");
    ns.api::<Dataset>()
        .create(&PostParams::default(), &dataset)
        .await
        .unwrap();
    let base = dashboard_url().await;
    let page = format!("/namespaces/{}", ns.name);

    // No token, or one the API server does not accept: 401, with how to log in.
    let (status, body) = dashboard_get(&base, &page, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("/login"), "{body}");
    assert_eq!(
        dashboard_get(&base, &page, Some("not-a-token")).await.0,
        401
    );

    let viewer = dashboard_viewer(&ns.name).await;
    let partial = dashboard_account(
        &ns.name,
        "partial",
        &["datasets", "trainingjobs", "monitors"],
    )
    .await;
    let stranger = dashboard_account(&ns.name, "stranger", &[]).await;

    let (status, body) = dashboard_get(&base, &page, Some(&viewer)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("data-kind=\"Dataset\" data-name=\"digits\""),
        "{body}"
    );
    let object = format!("{page}/datasets/digits");
    assert_eq!(dashboard_get(&base, &object, Some(&viewer)).await.0, 200);

    // May list the other kinds but not ModelDeployments: 403, naming what is missing.
    for (who, token) in [("partial", &partial), ("stranger", &stranger)] {
        for path in [&page, &object] {
            let (status, body) = dashboard_get(&base, path, Some(token)).await;
            assert_eq!(status, 403, "{who} {path}: {body}");
            assert!(
                body.contains(&format!("in namespace {}", ns.name)),
                "{body}"
            );
        }
    }
    let (_, body) = dashboard_get(&base, &page, Some(&partial)).await;
    assert!(body.contains("modeldeployments.modelops.dev"), "{body}");

    // The list of namespaces shows only those the caller may see.
    let link = format!("href=\"/namespaces/{}\"", ns.name);
    assert!(
        dashboard_get(&base, "/", Some(&viewer))
            .await
            .1
            .contains(&link)
    );
    assert!(
        !dashboard_get(&base, "/", Some(&stranger))
            .await
            .1
            .contains(&link)
    );

    // The login form's cookie works as the header does; a redirect leaves the site never.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        // (a token is base64url and dots: nothing to escape)
        .body(format!("token={viewer}&next=%2F%2Felsewhere.example%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let with_cookie = reqwest::Client::new()
        .get(format!("{base}{page}"))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status().as_u16(), 200);
    ns.delete().await;
}
