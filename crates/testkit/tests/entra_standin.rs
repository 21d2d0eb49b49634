//! The Entra (Graph v1.0) stand-in's own rules, each a test that fails when the rule breaks:
//! tokens (secret, certificate assertion), `$filter` forms and escaping, `$select`, paging,
//! group member removal by kind, soft delete and purge, licences, `$batch`, throttling and the
//! early counter, holding an answer

use std::time::Duration;

use base64::Engine;
use reqwest::{Client, Method, StatusCode};
use revoke_testkit::entra::{EntraStandin, GroupKind, MethodKind, SKU_E3, SKU_E5};
use serde_json::{json, Value};

fn standin() -> EntraStandin {
    EntraStandin::start().expect("the entra stand-in should start")
}

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .build()
        .expect("building a reqwest client should work")
}

async fn call(
    c: &Client,
    e: &EntraStandin,
    t: &str,
    method: Method,
    path_and_query: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut rb = c
        .request(method, format!("{}{path_and_query}", e.graph_url()))
        .bearer_auth(t);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("answered");
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("a body");
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("a JSON body")
    };
    (status, headers, v)
}

async fn get(c: &Client, e: &EntraStandin, t: &str, pq: &str) -> (StatusCode, Value) {
    let (s, _, v) = call(c, e, t, Method::GET, pq, None).await;
    (s, v)
}

/// `$filter` percent-encoded, as a client sends it
fn filter(expr: &str) -> String {
    form_urlencoded::byte_serialize(expr.as_bytes()).collect()
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_token_is_issued_for_the_secret_and_for_a_signed_assertion_and_refused_otherwise() {
    let e = standin();
    let c = client();
    let form = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut f = vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_id".to_owned(), e.client_id()),
            (
                "scope".to_owned(),
                "https://graph.microsoft.com/.default".to_owned(),
            ),
        ];
        for (k, v) in extra {
            f.push(((*k).to_owned(), (*v).to_owned()));
        }
        f
    };
    let post = |f: Vec<(String, String)>| {
        let c = c.clone();
        let url = e.token_url();
        async move {
            let mut body = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &f {
                body.append_pair(k, v);
            }
            let r = c
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.finish())
                .send()
                .await
                .expect("answered");
            let s = r.status();
            (s, r.json::<Value>().await.expect("json"))
        }
    };
    let secret = e.client_secret();
    let (s, v) = post(form(&[("client_secret", &secret)])).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    let token = v["access_token"].as_str().expect("a token").to_owned();
    let (s, _) = get(&c, &e, &token, "/users").await;
    assert_eq!(s, StatusCode::OK);

    let (s, v) = post(form(&[("client_secret", "wrong")])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"], "invalid_client");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap_or("")
            .starts_with("AADSTS7000215"),
        "{v}"
    );

    // A client assertion signed with the certificate's key
    let key_der = pem_body(&e.private_key_pem(), "PRIVATE KEY");
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&key_der).expect("the key parses");
    let cert_der = pem_body(&e.certificate_pem(), "CERTIFICATE");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let x5t = b64.encode(ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &cert_der,
    ));
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: Value, x5t: &str| {
        let h = b64.encode(json!({"alg": "RS256", "typ": "JWT", "x5t": x5t}).to_string());
        let p = b64.encode(claims.to_string());
        let signed = format!("{h}.{p}");
        let mut sig = vec![0; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signed.as_bytes(),
            &mut sig,
        )
        .expect("signing works");
        format!("{signed}.{}", b64.encode(sig))
    };
    let claims = |aud: &str, exp: i64| json!({"aud": aud, "iss": e.client_id(), "sub": e.client_id(), "jti": "j1", "nbf": now - 10, "exp": exp});
    let assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let good = sign(claims(&e.token_url(), now + 600), &x5t);
    let (s, v) = post(form(&[
        ("client_assertion_type", assertion_type),
        ("client_assertion", &good),
    ]))
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let expired = sign(claims(&e.token_url(), now - 3_600), &x5t);
    let (s, v) = post(form(&[
        ("client_assertion_type", assertion_type),
        ("client_assertion", &expired),
    ]))
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        v["error_description"]
            .as_str()
            .unwrap_or("")
            .starts_with("AADSTS700024"),
        "{v}"
    );
    let wrong_aud = sign(
        claims(
            "https://login.microsoftonline.com/x/oauth2/v2.0/token",
            now + 600,
        ),
        &x5t,
    );
    let (s, _) = post(form(&[
        ("client_assertion_type", assertion_type),
        ("client_assertion", &wrong_aud),
    ]))
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let mut tampered = good.clone();
    tampered.insert_str(good.find('.').expect("a dot") + 1, "eyJ4IjoxfQ");
    let (s, _) = post(form(&[
        ("client_assertion_type", assertion_type),
        ("client_assertion", &tampered),
    ]))
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let other_cert = sign(
        claims(&e.token_url(), now + 600),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    let (s, v) = post(form(&[
        ("client_assertion_type", assertion_type),
        ("client_assertion", &other_cert),
    ]))
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        v["error_description"]
            .as_str()
            .unwrap_or("")
            .starts_with("AADSTS700027"),
        "{v}"
    );

    // An expired token is refused by Graph
    e.expire_tokens();
    let (s, v) = get(&c, &e, &token, "/users").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&v), "InvalidAuthenticationToken");
}

fn pem_body(pem: &str, label: &str) -> Vec<u8> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).expect("a PEM") + begin.len();
    let stop = pem.find(&end).expect("a PEM end");
    let body: String = pem[start..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64")
}

#[tokio::test]
async fn filters_take_exactly_the_listed_forms_escape_quotes_and_ignore_case() {
    let e = standin();
    let odd = e.world(|w| w.odd_tenant());
    let t = e.issue_token();
    let c = client();
    let ids = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // A doubled quote is one quote; case is ignored
    let (s, v) = get(
        &c,
        &e,
        &t,
        &format!(
            "/users?$filter={}",
            filter("userPrincipalName eq 'O''Brien@Contoso.com'")
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids(&v), vec![odd.quoted.clone()]);
    let (_, v) = get(
        &c,
        &e,
        &t,
        &format!("/users?$filter={}", filter("employeeId eq 'E-0''1'")),
    )
    .await;
    assert_eq!(ids(&v), vec![odd.quoted.clone()]);
    // An unescaped quote is a syntax error, never a changed filter
    let (s, v) = get(
        &c,
        &e,
        &t,
        &format!(
            "/users?$filter={}",
            filter("userPrincipalName eq 'o'brien@contoso.com'")
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = get(
        &c,
        &e,
        &t,
        &format!(
            "/users?$filter={}",
            filter("userPrincipalName eq 'x' or accountEnabled eq true")
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The alias: proxyAddresses and otherMails find the owner, the UPN the target
    let (_, v) = get(
        &c,
        &e,
        &t,
        &format!(
            "/users?$filter={}",
            filter("proxyAddresses/any(p:p eq 'smtp:alias.target@contoso.com')")
        ),
    )
    .await;
    assert_eq!(ids(&v), vec![odd.alias_owner.clone()]);
    let (_, v) = get(
        &c,
        &e,
        &t,
        &format!(
            "/users?$filter={}",
            filter("otherMails/any(m:m eq 'ALIAS.TARGET@contoso.com')")
        ),
    )
    .await;
    assert_eq!(ids(&v), vec![odd.alias_owner.clone()]);
    let (_, v) = get(
        &c,
        &e,
        &t,
        &format!(
            "/users?$filter={}",
            filter("userPrincipalName eq 'alias.target@contoso.com'")
        ),
    )
    .await;
    assert_eq!(ids(&v), vec![odd.alias_target.clone()]);
    // The reused UPN names the new object only
    let (_, v) = get(
        &c,
        &e,
        &t,
        &format!("/users?$filter={}", filter("mail eq 'reused@contoso.com'")),
    )
    .await;
    assert_eq!(ids(&v), vec![odd.reused_new.clone()]);
    // and the object id a plan pinned is gone, though its UPN answers
    let (s, _) = get(&c, &e, &t, &format!("/users/{}", odd.reused_old)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = get(&c, &e, &t, "/users/reused@contoso.com?$select=id").await;
    assert_eq!(
        (s, v["id"].clone()),
        (StatusCode::OK, json!(odd.reused_new))
    );
    // The advanced query needs ConsistencyLevel: eventual and $count=true
    let sam = format!(
        "/users?$filter={}",
        filter("onPremisesSamAccountName eq 'synced01'")
    );
    let (s, v) = get(&c, &e, &t, &sam).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&v), "Request_UnsupportedQuery");
    let r = c
        .get(format!("{}{sam}&$count=true", e.graph_url()))
        .bearer_auth(&t)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(ids(&v), vec![odd.synced.clone()]);
    assert_eq!(v["@odata.count"], 1);
    let (_, v) = get(
        &c,
        &e,
        &t,
        &format!(
            "/users?$filter={}",
            filter("onPremisesImmutableId eq 'Zm9vYmFy+/=='")
        ),
    )
    .await;
    assert_eq!(ids(&v), vec![odd.synced.clone()]);
    // A property not in the list
    let (s, v) = get(
        &c,
        &e,
        &t,
        &format!("/users?$filter={}", filter("displayName eq 'x'")),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&v), "Request_UnsupportedQuery");
    // A guest by the invited address
    let (_, v) = get(
        &c,
        &e,
        &t,
        &format!(
            "/users?$filter={}&$select=id,userPrincipalName",
            filter("mail eq 'ext.user@fabrikam.com'")
        ),
    )
    .await;
    assert_eq!(ids(&v), vec![odd.guest.clone()]);
    assert!(v["value"][0]["userPrincipalName"]
        .as_str()
        .unwrap_or("")
        .contains("#EXT#"));
}

#[tokio::test]
async fn select_gives_only_the_named_properties_and_refuses_unknown_ones() {
    let e = standin();
    let l = e.world(|w| w.leaver("leaver@contoso.com"));
    let t = e.issue_token();
    let c = client();
    let (s, v) = get(&c, &e, &t, &format!("/users/{}", l.user)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v.get("accountEnabled").is_none(),
        "not a default property: {v}"
    );
    let (_, v) = get(
        &c,
        &e,
        &t,
        &format!(
            "/users/{}?$select=id,accountEnabled,licenseAssignmentStates",
            l.user
        ),
    )
    .await;
    assert_eq!(v["accountEnabled"], true);
    assert!(v.get("userPrincipalName").is_none());
    let states = v["licenseAssignmentStates"].as_array().expect("states");
    assert!(states
        .iter()
        .any(|s| s["skuId"] == SKU_E3 && s["assignedByGroup"].is_null()));
    assert!(states
        .iter()
        .any(|s| s["skuId"] == SKU_E5 && s["assignedByGroup"] == l.license_group.as_str()));
    let (s, _) = get(
        &c,
        &e,
        &t,
        &format!("/users/{}?$select=id,nonsense", l.user),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn member_of_pages_with_next_links_and_tells_the_group_kinds() {
    let e = standin();
    let odd = e.world(|w| w.odd_tenant());
    e.set_page_size(10);
    let t = e.issue_token();
    let c = client();
    let mut url = format!("{}/users/{}/memberOf?$select=id,displayName,groupTypes,mailEnabled,securityEnabled,onPremisesSyncEnabled,membershipRule", e.graph_url(), odd.many_groups);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = c.get(&url).bearer_auth(&t).send().await.expect("answered");
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.expect("json");
        pages += 1;
        for g in v["value"].as_array().expect("value") {
            assert_eq!(g["@odata.type"], "#microsoft.graph.group");
            assert!(g.get("mail").is_none(), "not selected: {g}");
            seen.push(g["id"].as_str().expect("id").to_owned());
        }
        match v["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut want = odd.many_group_ids.clone();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);

    let l = e.world(|w| w.leaver("kinds@contoso.com"));
    e.set_page_size(100);
    let (_, v) = get(&c, &e, &t, &format!("/users/{}/memberOf", l.user)).await;
    let by_id = |id: &str| {
        v["value"]
            .as_array()
            .and_then(|a| a.iter().find(|g| g["id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_id(&l.unified)["groupTypes"], json!(["Unified"]));
    assert_eq!(by_id(&l.distribution)["mailEnabled"], true);
    assert_eq!(by_id(&l.distribution)["securityEnabled"], false);
    assert_eq!(
        by_id(&l.dynamic)["groupTypes"],
        json!(["DynamicMembership"])
    );
    assert_eq!(by_id(&l.on_prem)["onPremisesSyncEnabled"], true);
    assert_eq!(
        by_id(&l.admin_unit)["@odata.type"],
        "#microsoft.graph.administrativeUnit"
    );
    let roles = v["value"].as_array().map(|a| {
        a.iter()
            .filter(|o| o["@odata.type"] == "#microsoft.graph.directoryRole")
            .count()
    });
    assert_eq!(roles, Some(1));
}

#[tokio::test]
async fn a_second_member_delete_is_404_and_the_kinds_graph_cannot_change_are_400() {
    let e = standin();
    let l = e.world(|w| w.leaver("groups@contoso.com"));
    let t = e.issue_token();
    let c = client();
    let del = |g: &str| format!("/groups/{g}/members/{}/$ref", l.user);
    for g in [&l.security, &l.unified] {
        let (s, _, _) = call(&c, &e, &t, Method::DELETE, &del(g), None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _, v) = call(&c, &e, &t, Method::DELETE, &del(g), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(error_code(&v), "Request_ResourceNotFound");
    }
    for (g, says) in [
        (&l.distribution, "originated within an external service"),
        (&l.mail_security, "originated within an external service"),
        (&l.on_prem, "on-premises mastered Directory Sync"),
        (&l.dynamic, "dynamic membership"),
    ] {
        let (s, _, v) = call(&c, &e, &t, Method::DELETE, &del(g), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(error_code(&v), "Request_BadRequest");
        assert!(
            v["error"]["message"].as_str().unwrap_or("").contains(says),
            "{v}"
        );
        assert!(v["error"]["innerError"]["request-id"].is_string());
    }
    let groups = e.world(|w| w.groups_of(&l.user));
    assert!(!groups.contains(&l.security) && !groups.contains(&l.unified));
    assert!(groups.contains(&l.distribution) && groups.contains(&l.dynamic));
    assert_eq!(e.mutations().len(), 8);
}

#[tokio::test]
async fn disable_revoke_roles_apps_methods_and_licences_change_the_tenant() {
    let e = standin();
    let l = e.world(|w| w.leaver("writes@contoso.com"));
    let t = e.issue_token();
    let c = client();
    let u = l.user.clone();
    let (s, _, _) = call(
        &c,
        &e,
        &t,
        Method::PATCH,
        &format!("/users/{u}"),
        Some(json!({"accountEnabled": false})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(!e.user(&u).expect("user").account_enabled);
    let (s, _, v) = call(
        &c,
        &e,
        &t,
        Method::POST,
        &format!("/users/{u}/microsoft.graph.revokeSignInSessions"),
        None,
    )
    .await;
    assert_eq!((s, v["value"].clone()), (StatusCode::OK, json!(true)));
    assert_eq!(
        e.user(&u).map(|x| (x.sessions, x.revocations)),
        Some((0, 1))
    );
    let (_, v) = get(
        &c,
        &e,
        &t,
        &format!("/users/{u}?$select=id,signInSessionsValidFromDateTime"),
    )
    .await;
    assert_ne!(
        v["signInSessionsValidFromDateTime"], "2026-01-05T09:00:00Z",
        "moved by the revocation"
    );
    let (s, _, _) = call(
        &c,
        &e,
        &t,
        Method::PATCH,
        &format!("/users/{u}"),
        Some(json!({"passwordProfile": {}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (_, v) = get(
        &c,
        &e,
        &t,
        &format!(
            "/roleManagement/directory/roleAssignments?$filter={}",
            filter(&format!("principalId eq '{u}'"))
        ),
    )
    .await;
    assert_eq!(v["value"][0]["id"], l.role_assignment.as_str());
    let rid = format!(
        "/roleManagement/directory/roleAssignments/{}",
        l.role_assignment
    );
    assert_eq!(
        call(&c, &e, &t, Method::DELETE, &rid, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&c, &e, &t, Method::DELETE, &rid, None).await.0,
        StatusCode::NOT_FOUND
    );

    let aid = format!("/users/{u}/appRoleAssignments/{}", l.app_role_assignment);
    assert_eq!(
        call(&c, &e, &t, Method::DELETE, &aid, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&c, &e, &t, Method::DELETE, &aid, None).await.0,
        StatusCode::NOT_FOUND
    );

    let (_, v) = get(&c, &e, &t, &format!("/users/{u}/authentication/methods")).await;
    assert_eq!(v["value"].as_array().map(Vec::len), Some(8));
    let phone = format!("/users/{u}/authentication/phoneMethods/{}", l.methods[0]);
    assert_eq!(
        call(&c, &e, &t, Method::DELETE, &phone, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&c, &e, &t, Method::DELETE, &phone, None).await.0,
        StatusCode::NOT_FOUND
    );
    // the fido2 method's id under another kind's path is not found
    let wrong = format!("/users/{u}/authentication/emailMethods/{}", l.methods[1]);
    assert_eq!(
        call(&c, &e, &t, Method::DELETE, &wrong, None).await.0,
        StatusCode::NOT_FOUND
    );
    let pw = format!(
        "/users/{u}/authentication/passwordMethods/{}",
        l.password_method
    );
    assert_eq!(
        call(&c, &e, &t, Method::DELETE, &pw, None).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(e.world(|w| w.methods_of(&u).len()), 7);
    assert!(e.world(|w| w
        .methods_of(&u)
        .iter()
        .any(|m| m.kind == MethodKind::Password)));

    let lic = format!("/users/{u}/microsoft.graph.assignLicense");
    let (s, _, v) = call(
        &c,
        &e,
        &t,
        Method::POST,
        &lic,
        Some(json!({"addLicenses": [], "removeLicenses": [SKU_E5]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("inherited from a group"));
    let (s, _, v) = call(
        &c,
        &e,
        &t,
        Method::POST,
        &lic,
        Some(json!({"addLicenses": [], "removeLicenses": [SKU_E3]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["id"], u.as_str());
    let (s, _, _) = call(
        &c,
        &e,
        &t,
        Method::POST,
        &lic,
        Some(json!({"addLicenses": [], "removeLicenses": [SKU_E3]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let skus: Vec<String> = e
        .user(&u)
        .expect("user")
        .licenses
        .iter()
        .map(|x| x.sku_id.clone())
        .collect();
    assert_eq!(skus, vec![SKU_E5.to_owned()]);

    let (_, v) = get(&c, &e, &t, &format!("/users/{u}/ownedDevices")).await;
    assert_eq!(v["value"][0]["id"], l.device.as_str());
    let (_, v) = get(&c, &e, &t, &format!("/users/{u}/registeredDevices")).await;
    assert_eq!(v["value"][0]["id"], l.device.as_str());
}

#[tokio::test]
async fn a_deleted_user_is_soft_deleted_then_404_then_purged() {
    let e = standin();
    let u = e.world(|w| w.user("gone@contoso.com"));
    let t = e.issue_token();
    let c = client();
    assert_eq!(
        call(&c, &e, &t, Method::DELETE, &format!("/users/{u}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (s, v) = get(&c, &e, &t, &format!("/users/{u}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&v), "Request_ResourceNotFound");
    assert_eq!(
        call(&c, &e, &t, Method::DELETE, &format!("/users/{u}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (s, v) = get(&c, &e, &t, &format!("/directory/deletedItems/{u}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["userPrincipalName"], "gone@contoso.com");
    assert!(v["deletedDateTime"].is_string());
    let (_, v) = get(&c, &e, &t, "/directory/deletedItems/microsoft.graph.user").await;
    assert_eq!(v["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        call(
            &c,
            &e,
            &t,
            Method::DELETE,
            &format!("/directory/deletedItems/{u}"),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(
            &c,
            &e,
            &t,
            Method::DELETE,
            &format!("/directory/deletedItems/{u}"),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&c, &e, &t, &format!("/directory/deletedItems/{u}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_batch_of_21_is_refused_and_parts_are_answered_and_recorded_one_by_one() {
    let e = standin();
    let users: Vec<String> = e.world(|w| {
        (0..21)
            .map(|i| w.user(&format!("b{i}@contoso.com")))
            .collect()
    });
    let g = e.world(|w| {
        let g = w.group("Batchers", GroupKind::Security);
        w.add_member(&g, &users[0]);
        g
    });
    let t = e.issue_token();
    let c = client();
    let parts: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, u)| json!({"id": (i + 1).to_string(), "method": "GET", "url": format!("/users/{u}/memberOf?$select=id")}))
        .collect();
    let (s, _, v) = call(
        &c,
        &e,
        &t,
        Method::POST,
        "/$batch",
        Some(json!({"requests": parts})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        e.requests().iter().all(|r| !r.in_batch),
        "no part of a refused batch is served"
    );

    let mut twenty = parts[..19].to_vec();
    twenty.push(json!({"id": "del", "method": "DELETE", "url": format!("/groups/{g}/members/{}/$ref", users[0])}));
    let (s, _, v) = call(
        &c,
        &e,
        &t,
        Method::POST,
        "/$batch",
        Some(json!({"requests": twenty})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let responses = v["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 20);
    let del = responses
        .iter()
        .find(|r| r["id"] == "del")
        .expect("the delete part");
    assert_eq!(del["status"], 204);
    assert!(responses
        .iter()
        .filter(|r| r["id"] != "del")
        .all(|r| r["status"] == 200));
    assert_eq!(e.requests().iter().filter(|r| r.in_batch).count(), 20);
    assert_eq!(
        e.mutations().len(),
        1,
        "the envelope is no mutation, its DELETE part is"
    );

    let dup = json!({"requests": [parts[0].clone(), parts[0].clone()]});
    assert_eq!(
        call(&c, &e, &t, Method::POST, "/$batch", Some(dup)).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn over_the_write_budget_is_429_with_retry_after_and_an_early_retry_is_counted() {
    let e = standin();
    let users: Vec<String> = e.world(|w| {
        (0..4)
            .map(|i| w.user(&format!("w{i}@contoso.com")))
            .collect()
    });
    e.set_write_budget(3, Duration::from_secs(30));
    let t = e.issue_token();
    let c = client();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for u in &users {
        let (s, h, _) = call(
            &c,
            &e,
            &t,
            Method::PATCH,
            &format!("/users/{u}"),
            Some(json!({"accountEnabled": false})),
        )
        .await;
        statuses.push(s.as_u16());
        if s == StatusCode::TOO_MANY_REQUESTS {
            retry_after = h
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
        }
    }
    assert_eq!(statuses, vec![204, 204, 204, 429]);
    assert!(
        retry_after.is_some_and(|s| (1..=30).contains(&s)),
        "{retry_after:?}"
    );
    assert_eq!(e.early_requests(), 0);
    // Reads have their own budget, but any call before the Retry-After is early
    let (s, _) = get(&c, &e, &t, &format!("/users/{}", users[0])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(e.early_requests(), 1);
    assert!(
        e.user(&users[3]).expect("user").account_enabled,
        "the throttled call changed nothing"
    );
    assert_eq!(e.throttled(), 1);
}

#[tokio::test]
async fn a_storm_throttles_batch_parts_one_by_one_and_waiting_is_not_early() {
    let e = standin();
    let u = e.world(|w| w.user("storm@contoso.com"));
    let t = e.issue_token();
    let c = client();
    e.storm(2, 1);
    let parts: Vec<Value> = (1..=3)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{u}?$select=id")}))
        .collect();
    let (s, _, v) = call(
        &c,
        &e,
        &t,
        Method::POST,
        "/$batch",
        Some(json!({"requests": parts})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let mut statuses: Vec<(String, u64, Option<String>)> = v["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("").to_owned(),
                r["status"].as_u64().unwrap_or(0),
                r["headers"]["Retry-After"].as_str().map(str::to_owned),
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec![
            ("1".to_owned(), 429, Some("1".to_owned())),
            ("2".to_owned(), 429, Some("1".to_owned())),
            ("3".to_owned(), 200, None)
        ]
    );
    assert_eq!(e.early_requests(), 0, "parts of one batch are not early");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (s, _) = get(&c, &e, &t, &format!("/users/{u}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(e.early_requests(), 0);
}

#[tokio::test]
async fn a_held_answer_comes_after_the_change_is_made() {
    let e = standin();
    let l = e.world(|w| w.leaver("held@contoso.com"));
    let t = e.issue_token();
    let c = client();
    e.hold("DELETE", "/$ref");
    let url = format!(
        "{}/groups/{}/members/{}/$ref",
        e.graph_url(),
        l.security,
        l.user
    );
    let pending = tokio::spawn({
        let c = c.clone();
        let t = t.clone();
        async move {
            c.delete(url)
                .bearer_auth(t)
                .send()
                .await
                .map(|r| r.status())
        }
    });
    while e.held() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !e.world(|w| w.groups_of(&l.user)).contains(&l.security),
        "changed while held"
    );
    assert!(!pending.is_finished());
    e.release();
    let status = pending.await.expect("joined").expect("answered");
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// Every call of the contract (docs/connectors/entra.md), good answers and the error answers the
/// connector classifies, through graphspec's proxy: Microsoft's own v1.0 description finds no
/// violation in any request or answer
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_of_the_contract_passes_microsofts_own_description() {
    let e = tokio::task::spawn_blocking(EntraStandin::start_validated)
        .await
        .expect("joined")
        .expect("the stand-in and graphspec's proxy should start");
    assert!(e.proxy().is_some());
    let l = e.world(|w| w.leaver("valid@contoso.com"));
    let odd = e.world(|w| w.odd_tenant());
    e.set_page_size(10);
    let t = e.issue_token();
    let c = client();
    let u = l.user.clone();
    let user_select = "id,userPrincipalName,mail,otherMails,proxyAddresses,employeeId,accountEnabled,displayName,onPremisesSyncEnabled,onPremisesImmutableId,onPremisesSamAccountName,assignedLicenses,licenseAssignmentStates";
    for f in [
        "userPrincipalName eq 'valid@contoso.com'".to_owned(),
        "mail eq 'o''brien@contoso.com'".to_owned(),
        "otherMails/any(m:m eq 'valid@personal.example')".to_owned(),
        "proxyAddresses/any(p:p eq 'smtp:valid@contoso.com')".to_owned(),
        "employeeId eq 'EMP-valid'".to_owned(),
        "onPremisesImmutableId eq 'Zm9vYmFy+/=='".to_owned(),
    ] {
        let (s, v) = get(
            &c,
            &e,
            &t,
            &format!("/users?$filter={}&$select={user_select}", filter(&f)),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{f}: {v}");
        assert_eq!(v["value"].as_array().map(Vec::len), Some(1), "{f}: {v}");
    }
    let r = c
        .get(format!(
            "{}/users?$filter={}&$count=true&$select={user_select}",
            e.graph_url(),
            filter("onPremisesSamAccountName eq 'SYNCED01'")
        ))
        .bearer_auth(&t)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = get(&c, &e, &t, &format!("/users/{u}?$select={user_select}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = get(
        &c,
        &e,
        &t,
        &format!("/users/{u}?$select=id,signInSessionsValidFromDateTime"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // memberOf pages through the proxy (25 groups, pages of 10)
    let mut url = format!("{}/users/{}/memberOf?$select=id,displayName,groupTypes,mailEnabled,securityEnabled,onPremisesSyncEnabled,membershipRule", e.graph_url(), odd.many_groups);
    let mut n = 0;
    loop {
        let r = c.get(&url).bearer_auth(&t).send().await.expect("answered");
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.expect("json");
        n += v["value"].as_array().map_or(0, Vec::len);
        match v["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with(&e.graph_url()),
                    "paging stays behind the proxy: {next}"
                );
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(n, 25);
    for p in [
        format!("/users/{u}/memberOf?$select=id,displayName,groupTypes,mailEnabled,securityEnabled,onPremisesSyncEnabled,membershipRule"),
        format!("/users/{u}/appRoleAssignments"),
        format!("/roleManagement/directory/roleAssignments?$filter={}", filter(&format!("principalId eq '{u}'"))),
        format!("/users/{u}/authentication/methods"),
        format!("/users/{u}/ownedDevices"),
        format!("/users/{u}/registeredDevices"),
    ] {
        let (s, v) = get(&c, &e, &t, &p).await;
        assert_eq!(s, StatusCode::OK, "{p}: {v}");
    }
    // writes, and the error answers the connector classifies
    let ok = |s: StatusCode, want: u16, what: &str| assert_eq!(s.as_u16(), want, "{what}");
    let (s, _, _) = call(
        &c,
        &e,
        &t,
        Method::PATCH,
        &format!("/users/{u}"),
        Some(json!({"accountEnabled": false})),
    )
    .await;
    ok(s, 204, "disable");
    let (s, _, _) = call(
        &c,
        &e,
        &t,
        Method::POST,
        &format!("/users/{u}/microsoft.graph.revokeSignInSessions"),
        None,
    )
    .await;
    ok(s, 200, "revoke");
    let del = |g: &str| format!("/groups/{g}/members/{u}/$ref");
    ok(
        call(&c, &e, &t, Method::DELETE, &del(&l.security), None)
            .await
            .0,
        204,
        "member",
    );
    ok(
        call(&c, &e, &t, Method::DELETE, &del(&l.security), None)
            .await
            .0,
        404,
        "member again",
    );
    ok(
        call(&c, &e, &t, Method::DELETE, &del(&l.distribution), None)
            .await
            .0,
        400,
        "distribution",
    );
    let aid = format!("/users/{u}/appRoleAssignments/{}", l.app_role_assignment);
    ok(
        call(&c, &e, &t, Method::DELETE, &aid, None).await.0,
        204,
        "app role",
    );
    ok(
        call(&c, &e, &t, Method::DELETE, &aid, None).await.0,
        404,
        "app role again",
    );
    let rid = format!(
        "/roleManagement/directory/roleAssignments/{}",
        l.role_assignment
    );
    ok(
        call(&c, &e, &t, Method::DELETE, &rid, None).await.0,
        204,
        "role",
    );
    ok(
        call(&c, &e, &t, Method::DELETE, &rid, None).await.0,
        404,
        "role again",
    );
    let kinds = [
        "phone",
        "fido2",
        "microsoftAuthenticator",
        "softwareOath",
        "temporaryAccessPass",
        "windowsHelloForBusiness",
        "email",
    ];
    for (kind, mid) in kinds.iter().zip(&l.methods) {
        let p = format!("/users/{u}/authentication/{kind}Methods/{mid}");
        ok(
            call(&c, &e, &t, Method::DELETE, &p, None).await.0,
            204,
            kind,
        );
    }
    let p = format!("/users/{u}/authentication/phoneMethods/{}", l.methods[0]);
    ok(
        call(&c, &e, &t, Method::DELETE, &p, None).await.0,
        404,
        "phone again",
    );
    let lic = format!("/users/{u}/microsoft.graph.assignLicense");
    let body = |sku: &str| Some(json!({"addLicenses": [], "removeLicenses": [sku]}));
    ok(
        call(&c, &e, &t, Method::POST, &lic, body(SKU_E3)).await.0,
        200,
        "licence",
    );
    ok(
        call(&c, &e, &t, Method::POST, &lic, body(SKU_E5)).await.0,
        400,
        "group licence",
    );
    let parts: Vec<Value> = [&l.user, &odd.quoted, &odd.guest]
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"id": (i + 1).to_string(), "method": "GET", "url": format!("/users/{id}/memberOf?$select=id,displayName,groupTypes")}))
        .collect();
    let (s, _, v) = call(
        &c,
        &e,
        &t,
        Method::POST,
        "/$batch",
        Some(json!({"requests": parts})),
    )
    .await;
    ok(s, 200, "batch");
    assert_eq!(v["responses"].as_array().map(Vec::len), Some(3));
    e.storm(1, 1);
    let (s, h, _) = call(
        &c,
        &e,
        &t,
        Method::GET,
        &format!("/users/{u}?$select=id"),
        None,
    )
    .await;
    ok(s, 429, "storm");
    assert!(h.contains_key("retry-after"));
    ok(
        call(&c, &e, &t, Method::DELETE, &format!("/users/{u}"), None)
            .await
            .0,
        204,
        "delete",
    );
    ok(
        call(&c, &e, &t, Method::DELETE, &format!("/users/{u}"), None)
            .await
            .0,
        404,
        "delete again",
    );
    ok(
        get(&c, &e, &t, &format!("/directory/deletedItems/{u}"))
            .await
            .0,
        200,
        "deleted item",
    );
    let purge = format!("/directory/deletedItems/{u}");
    ok(
        call(&c, &e, &t, Method::DELETE, &purge, None).await.0,
        204,
        "purge",
    );
    ok(
        call(&c, &e, &t, Method::DELETE, &purge, None).await.0,
        404,
        "purge again",
    );
    e.assert_valid();
}

#[tokio::test]
async fn reads_have_their_own_budget_and_scripted_faults_carry_graphs_error_body() {
    let e = standin();
    let crowd = e.world(|w| w.crowd(3, 2));
    let mut groups = e.world(|w| w.groups_of(&crowd.users[2]));
    groups.sort();
    let mut want = crowd.groups.clone();
    want.sort();
    assert_eq!(groups, want);
    e.set_read_budget(2, Duration::from_secs(30));
    let t = e.issue_token();
    let c = client();
    let path = format!("/users/{}?$select=id", crowd.users[0]);
    assert_eq!(get(&c, &e, &t, &path).await.0, StatusCode::OK);
    assert_eq!(get(&c, &e, &t, &path).await.0, StatusCode::OK);
    let (s, h, v) = call(&c, &e, &t, Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&v), "TooManyRequests");
    assert!(h.contains_key("retry-after"));
    // a write is not held back by the read budget (it is early, though: a Retry-After is running)
    let (s, _, _) = call(
        &c,
        &e,
        &t,
        Method::PATCH,
        &format!("/users/{}", crowd.users[1]),
        Some(json!({"accountEnabled": false})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(e.early_requests(), 1);
    e.set_read_budget(100, Duration::from_secs(30));
    e.fail_next(1, 503);
    let (s, _, v) = call(&c, &e, &t, Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(v["error"]["message"].is_string());
    assert_eq!(get(&c, &e, &t, &path).await.0, StatusCode::OK);
    // a 503 with Retry-After, on a tenant with no throttle running
    let e2 = standin();
    let u2 = e2.world(|w| w.user("u2@contoso.com"));
    let t2 = e2.issue_token();
    let path2 = format!("/users/{u2}?$select=id");
    e2.unavailable(1, 30);
    let (s, h, v) = call(&c, &e2, &t2, Method::GET, &path2, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&v), "serviceNotAvailable");
    assert_eq!(
        h.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("30")
    );
    assert_eq!(e2.early_requests(), 0);
    assert_eq!(get(&c, &e2, &t2, &path2).await.0, StatusCode::OK);
    assert_eq!(
        e2.early_requests(),
        1,
        "a call within a 503's Retry-After is early too"
    );
    // no token, a token of nobody's
    let r = c
        .get(format!("{}{path}", e.graph_url()))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&c, &e, &t.replace('e', "f"), &path).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn count_needs_the_eventual_header_and_a_held_batch_part_holds_its_batch() {
    let e = standin();
    let l = e.world(|w| w.leaver("count@contoso.com"));
    let t = e.issue_token();
    let c = client();
    let (s, v) = get(&c, &e, &t, "/users?$count=true&$select=id").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let r = c
        .get(format!("{}/users?$count=true&$select=id", e.graph_url()))
        .bearer_auth(&t)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), StatusCode::OK);

    e.hold("DELETE", "/$ref");
    let parts = json!({"requests": [
        {"id": "a", "method": "GET", "url": format!("/users/{}?$select=id", l.user)},
        {"id": "b", "method": "DELETE", "url": format!("/groups/{}/members/{}/$ref", l.unified, l.user)},
    ]});
    let url = format!("{}/$batch", e.graph_url());
    let pending = tokio::spawn({
        let c = c.clone();
        let t = t.clone();
        async move {
            c.post(url)
                .bearer_auth(t)
                .json(&parts)
                .send()
                .await
                .map(|r| r.status())
        }
    });
    while e.held() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!e.world(|w| w.groups_of(&l.user)).contains(&l.unified));
    assert_eq!(
        e.mutation_count(),
        1,
        "the part is recorded while its answer is held"
    );
    assert!(!pending.is_finished());
    e.release();
    assert_eq!(
        pending.await.expect("joined").expect("answered"),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_user_synced_from_ad_cannot_be_disabled_or_deleted_in_the_cloud() {
    let e = standin();
    let odd = e.world(|w| w.odd_tenant());
    let t = e.issue_token();
    let c = client();
    let u = odd.synced.clone();
    let (s, _, v) = call(
        &c,
        &e,
        &t,
        Method::PATCH,
        &format!("/users/{u}"),
        Some(json!({"accountEnabled": false})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("on-premises mastered Directory Sync"));
    assert!(e.user(&u).expect("still there").account_enabled);
    let (s, _, _) = call(&c, &e, &t, Method::DELETE, &format!("/users/{u}"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e.user(&u).is_some());
    // what the cloud owns still works for it
    let (s, _, _) = call(
        &c,
        &e,
        &t,
        Method::POST,
        &format!("/users/{u}/microsoft.graph.revokeSignInSessions"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}
