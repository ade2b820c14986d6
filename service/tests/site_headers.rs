//! A tenant's VM answers with headers meant to steer the shared nginx or to act on the
//! dashboard's origin; through a real nginx the visitor gets none of them. libvirt's
//! `test:///default` driver runs nothing, so once the hosting is running this test binds its
//! own hostile "VM" web server on the HTTP forward address (127.0.0.2) at the hosting's HTTP port, and a stand-in for the
//! app on the app upstream whose every answer is a secret that must never reach the visitor.
//! The same holds over HTTPS (a certificate made here with `openssl`): `/{slug}/` is the
//! dashboard's origin there too.
use std::time::Duration;

use service::hosting::CreateHosting;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::{Env, env_with};

const APP_SECRET: &str = "the-dashboard-api-answer-with-the-visitors-data";

/// A minimal HTTP/1.x server on a loopback listener: one request per connection, then close.
fn serve(listener: tokio::net::TcpListener, answer: fn(&str) -> String) {
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let _ = s.write_all(answer(&path).as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
}

fn response(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut r = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}

/// Headers no site answer may carry to the visitor, whichever way it is reached.
const HOSTILE: &[(&str, &str)] = &[
    ("X-Accel-Redirect", "/api/v1/users/me"),
    ("X-Accel-Expires", "3600"),
    ("X-Accel-Limit-Rate", "1"),
    ("X-Accel-Buffering", "no"),
    ("X-Accel-Charset", "koi8-r"),
    ("Set-Cookie", "vmw_session=evil; Path=/; HttpOnly"),
    ("Set-Cookie", "tracker=1; Domain=localhost; Path=/"),
    ("Clear-Site-Data", "\"*\""),
    ("X-Webhoster-Site", "someone-else"),
];

/// Headers that act on a whole origin: hidden where the site shares the dashboard's.
const ORIGIN_WIDE: &[(&str, &str)] = &[
    ("Content-Security-Policy", "script-src * 'unsafe-inline'; report-uri /vm-csp-report"),
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("Service-Worker-Allowed", "/"),
    ("Access-Control-Allow-Origin", "https://evil.example"),
    ("Access-Control-Allow-Credentials", "true"),
    ("Alt-Svc", "h2=\":8443\"; ma=86400"),
    ("NEL", "{\"report_to\":\"t\",\"max_age\":86400,\"success_fraction\":1}"),
    ("Report-To", "{\"group\":\"t\",\"max_age\":86400,\"endpoints\":[{\"url\":\"https://evil.example/r\"}]}"),
];

/// A site's own headers, which must keep working.
const ORDINARY: &[(&str, &str)] =
    &[("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "max-age=60"), ("X-Site-Own", "kept")];

fn hostile_vm(path: &str) -> String {
    let mut h: Vec<(&str, &str)> = HOSTILE.iter().chain(ORIGIN_WIDE).chain(ORDINARY).copied().collect();
    match path {
        "/moved" => {
            h.retain(|(k, _)| *k != "Content-Type");
            h.push(("Location", "/elsewhere"));
            response("302 Found", &h, "")
        }
        // nginx shows its site-down page instead.
        "/down" => response("503 Service Unavailable", &h, "vm-down-body"),
        _ => response("200 OK", &h, "the-tenants-page"),
    }
}

fn app_stand_in(_path: &str) -> String {
    response("200 OK", &[("Content-Type", "application/json")], &format!("{{\"secret\":\"{APP_SECRET}\"}}"))
}

/// The shared environment with a stand-in for the app on its upstream, serving HTTPS too on
/// `tls` with a self-signed certificate for the loopback address and `*.sites.test` (its PEM).
async fn env(tls: std::net::SocketAddr) -> (Env, Vec<u8>) {
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = app.local_addr().unwrap();
    serve(app, app_stand_in);
    let e = env_with(|c| {
        c.app_upstream = app_addr;
        c.base_domain = "sites.test".into();
        c.nginx_listen_tls = Some(tls);
    })
    .await;
    let dir = e.svc.config().data_dir.join("certs");
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-keyout", "key.pem", "-out", "cert.pem", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:*.sites.test", "-addext", "basicConstraints=critical,CA:FALSE"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // nginx's workers read the sites' key at each handshake (as www-data when run as root).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let cert = service::proxy::CertPaths { chain: dir.join("cert.pem"), key: dir.join("key.pem") };
    let name = service::proxy::TlsName { cert, redirect_http: false, ocsp_stapling: false };
    let front = service::proxy::TlsFront { dashboard: Some(name.clone()), sites: Some(name), hsts_max_age_secs: 0 };
    e.svc.proxy().set_tls(front).await.unwrap();
    (e, std::fs::read(dir.join("cert.pem")).unwrap())
}

fn assert_none_of(r: &reqwest::Response, headers: &[(&str, &str)], what: &str) {
    for (k, v) in headers {
        // nginx sets these two itself: the VM's value must not be among them.
        let ours = ["X-Webhoster-Site", "Content-Security-Policy"].iter().any(|o| o.eq_ignore_ascii_case(k));
        let leaked = r.headers().get_all(*k).iter().any(|got| !ours || got == v);
        assert!(!leaked, "{what}: the VM's {k} reached the visitor: {:?}", r.headers());
    }
}

/// Visits `url` as a signed-in visitor of the dashboard would (with its session cookie).
async fn visit(client: &reqwest::Client, url: &str, slug: &str, path_routed: bool) -> (reqwest::StatusCode, String) {
    let r = client.get(url).header("cookie", "vmw_session=the-visitors-own-session").send().await.unwrap();
    let status = r.status();
    assert_none_of(&r, HOSTILE, url);
    // nginx's own site-down page (served for a 502-504) carries neither of our site headers.
    let ours = if status == 503 { 0 } else { 1 };
    let site: Vec<_> = r.headers().get_all("x-webhoster-site").iter().collect();
    assert!(site.len() == ours && site.iter().all(|v| *v == slug), "{url} (HTTP {status}): only nginx names the site: {site:?}");
    if path_routed {
        assert_none_of(&r, ORIGIN_WIDE, url);
        let csp: Vec<_> = r.headers().get_all("content-security-policy").iter().collect();
        let only_ours = csp.len() == ours && csp.iter().all(|v| v.to_str().unwrap().starts_with("sandbox "));
        assert!(only_ours, "{url}: ours is the only policy: {csp:?}");
    }
    let headers = r.headers().clone();
    let body = r.text().await.unwrap();
    assert!(!body.contains(APP_SECRET), "{url}: nginx served the dashboard's API under the site's URL");
    if status == 200 {
        for (k, v) in ORDINARY {
            assert_eq!(headers.get(*k).and_then(|v| v.to_str().ok()), Some(*v), "{url}: the site's own {k}");
        }
    }
    (status, body)
}

#[tokio::test]
async fn a_vm_cannot_steer_nginx_or_plant_headers_on_the_visitor() {
    let tls = std::net::SocketAddr::from(([127, 0, 0, 1], vmw_test_support::free_port()));
    let (e, cert) = env(tls).await;
    let actor = e.user("mallory").await;
    let h = e.svc.create(&actor, CreateHosting::default()).await.unwrap();
    let h = e.svc.wait_settled(&actor, h.id, Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(h.state, service::hosting::HostingState::Running, "reason: {:?}", h.state_reason);
    let vm_port = u16::try_from(h.http_port.unwrap()).unwrap();
    let vm = tokio::net::TcpListener::bind((e.svc.config().http_forward_bind, vm_port)).await.expect("the VM's port is free");
    serve(vm, hostile_vm);

    let nginx = e.svc.config().nginx_listen;
    let port = nginx.port();
    let sub = format!("{}.sites.test", h.slug);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve(&sub, nginx)
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .build()
        .unwrap();
    let tport = tls.port();
    let bases = [
        (format!("http://127.0.0.1:{port}/{}", h.slug), true),
        (format!("http://127.0.0.1:{port}/{}", actor.user_id), true),
        (format!("http://{sub}:{port}"), false),
        (format!("https://127.0.0.1:{tport}/{}", h.slug), true),
        (format!("https://127.0.0.1:{tport}/{}", actor.user_id), true),
        (format!("https://{sub}:{tport}"), false),
    ];
    for (base, path_routed) in &bases {
        let (s, body) = visit(&client, &format!("{base}/evil"), &h.slug, *path_routed).await;
        assert_eq!((s.as_u16(), body.as_str()), (200, "the-tenants-page"), "{base}/evil");

        let url = format!("{base}/moved");
        let r = client.get(&url).send().await.unwrap();
        let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        let (s, _) = visit(&client, &url, &h.slug, *path_routed).await;
        assert_eq!(s, 302, "{url}");
        assert_eq!(location.as_deref(), Some("/elsewhere"), "{url}: the site's own redirect still works");

        let (s, body) = visit(&client, &format!("{base}/down"), &h.slug, *path_routed).await;
        assert_eq!(s, 503, "{base}/down");
        assert!(!body.contains("vm-down-body"), "{base}/down: nginx's site-down page is shown, not the VM's");
    }
}
