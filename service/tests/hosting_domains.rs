//! Custom domains of a site (issue #30) on libvirt's test driver, a real database (SQLite, or
//! PostgreSQL with TEST_DATABASE_URL) and a real nginx: add, list, remove; the per-user limit;
//! a name taken by another user; every name rule; who may; a hosting's delete takes its
//! domains and their certificates; the site's route carries only domains whose ownership is
//! proven, with their certificates once issued, and the HSTS switch.
use std::time::Duration;

use service::Error;
use service::domain_name::{DomainError, DomainNameError, domain_cert_dir, domain_cert_files, verify_token};
use service::hosting::Operation;
use vmw_types::{DomainMethod, DomainState};

mod support;
use support::{Env, env_with};

async fn env() -> Env {
    env_limit(3).await
}

async fn env_limit(domains: u32) -> Env {
    env_with(|c| {
        c.idle_sleep_secs = 0;
        c.max_hostings_per_user = 4;
        c.domains_per_user = domains;
        c.base_domain = "sites.test".into();
        c.public_host = "panel.test".into();
    })
    .await
}

fn code(r: Result<impl std::fmt::Debug, Error>) -> &'static str {
    match r {
        Err(e) => e.code(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[tokio::test]
async fn a_domain_is_added_listed_with_its_records_and_removed() {
    let e = env().await;
    let [_boss, ann] = e.users(["boss", "ann"]).await;
    let h = e.running_site(&ann, "blog").await;

    let d = e.svc.add_domain(&ann, h.id, "  WWW.Example.COM. ").await.unwrap();
    assert_eq!((d.name.as_str(), d.display_name.as_str()), ("www.example.com", "www.example.com"));
    assert_eq!(d.state, DomainState::WaitingDns);
    assert_eq!(d.state.label(), "Waiting for DNS");
    assert!(d.next_check_at.is_some(), "the checker looks at once");
    assert_eq!(d.verification.cname_target, "blog.sites.test");
    assert_eq!(d.verification.txt_name, "_vmw-verify.www.example.com");
    assert_eq!(d.verification.txt_value.len(), 32);
    assert_eq!(e.svc.domain_txt_value(ann.user_id, "www.example.com").await.unwrap(), d.verification.txt_value);
    let secret = std::fs::read(service::domain_name::secret_path(&e.svc.config().data_dir)).unwrap();
    assert_eq!(verify_token(&secret, ann.user_id, "www.example.com"), d.verification.txt_value, "the token is the secret's");

    let idn = e.svc.add_domain(&ann, h.id, "Bücher.Example").await.unwrap();
    assert_eq!((idn.name.as_str(), idn.display_name.as_str()), ("xn--bcher-kva.example", "bücher.example"));
    let list = e.svc.list_domains(&ann, h.id).await.unwrap();
    assert_eq!(list.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["www.example.com", "xn--bcher-kva.example"]);

    e.svc.delete_domain(&ann, h.id, d.id).await.unwrap();
    let list = e.svc.list_domains(&ann, h.id).await.unwrap();
    assert_eq!(list.iter().map(|d| d.id).collect::<Vec<_>>(), [idn.id]);
    assert!(matches!(e.svc.delete_domain(&ann, h.id, d.id).await, Err(Error::NotFound("domain"))));
    let events = e.svc.events(&ann, h.id, 0).await.unwrap();
    assert!(events.iter().any(|ev| ev.message.starts_with("Domain www.example.com added")), "{events:?}");
    assert!(events.iter().any(|ev| ev.message == "Domain www.example.com removed"), "{events:?}");
    // Removed, the name is free again.
    e.svc.add_domain(&ann, h.id, "www.example.com").await.unwrap();
}

#[tokio::test]
async fn each_user_may_add_as_many_domains_as_the_limit_over_all_their_sites() {
    let e = env().await;
    let [_boss, ann] = e.users(["boss", "ann"]).await;
    let a = e.running_site(&ann, "one").await;
    let b = e.running_site(&ann, "two").await;
    e.svc.add_domain(&ann, a.id, "a.example.com").await.unwrap();
    e.svc.add_domain(&ann, a.id, "b.example.com").await.unwrap();
    e.svc.add_domain(&ann, b.id, "c.example.com").await.unwrap();
    let err = e.svc.add_domain(&ann, b.id, "d.example.com").await.unwrap_err();
    assert_eq!(err.code(), "domain_limit");
    assert!(err.to_string().contains("at most 3"), "{err}");
    assert_eq!(e.svc.store().domain_count_for_user(ann.user_id).await.unwrap(), 3);
    let first = e.svc.list_domains(&ann, a.id).await.unwrap()[0].id;
    e.svc.delete_domain(&ann, a.id, first).await.unwrap();
    e.svc.add_domain(&ann, b.id, "d.example.com").await.unwrap();
}

#[tokio::test]
async fn a_name_added_by_anyone_is_taken() {
    let e = env().await;
    let [_boss, ann, bob] = e.users(["boss", "ann", "bob"]).await;
    let a = e.running_site(&ann, "anns").await;
    let b = e.running_site(&bob, "bobs").await;
    e.svc.add_domain(&ann, a.id, "shop.example.com").await.unwrap();
    for same in ["shop.example.com", "SHOP.example.com.", " shop.EXAMPLE.com"] {
        let err = e.svc.add_domain(&bob, b.id, same).await.unwrap_err();
        assert!(matches!(err, Error::Domain(DomainError::Taken(_))), "{same}: {err:?}");
        assert_eq!(err.code(), "domain_taken");
    }
    assert_eq!(code(e.svc.add_domain(&ann, a.id, "shop.example.com").await), "domain_taken", "also on the same site");
    // The IDN and its ASCII form are one name.
    e.svc.add_domain(&ann, a.id, "bücher.example").await.unwrap();
    assert_eq!(code(e.svc.add_domain(&bob, b.id, "xn--bcher-kva.example").await), "domain_taken");
    assert!(e.svc.list_domains(&bob, b.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn every_name_rule_is_told_apart() {
    let e = env().await;
    let [_boss, ann] = e.users(["boss", "ann"]).await;
    let h = e.running_site(&ann, "rules").await;
    use DomainNameError as N;
    let long = format!("{}.example.com", vec!["a".repeat(60); 4].join("."));
    type Rule = fn(&N) -> bool;
    let cases: Vec<(String, Rule)> = vec![
        ("".into(), |n| matches!(n, N::Empty)),
        ("*.example.com".into(), |n| matches!(n, N::Wildcard)),
        ("192.0.2.7".into(), |n| matches!(n, N::IpLiteral)),
        ("[2001:db8::1]".into(), |n| matches!(n, N::IpLiteral)),
        ("example".into(), |n| matches!(n, N::SingleLabel)),
        ("host.42".into(), |n| matches!(n, N::NumericTld)),
        ("localhost".into(), |n| matches!(n, N::SpecialUse(_))),
        ("printer.local".into(), |n| matches!(n, N::SpecialUse(_))),
        ("panel.test".into(), |n| matches!(n, N::PublicHost(_))),
        ("sites.test".into(), |n| matches!(n, N::BaseDomain(_))),
        ("other.sites.test".into(), |n| matches!(n, N::BaseDomain(_))),
        (long, |n| matches!(n, N::TooLong(_) | N::Idna(_))),
        (format!("{}.example.com", "a".repeat(64)), |n| matches!(n, N::LabelLength | N::Idna(_))),
        ("-a.example.com".into(), |n| matches!(n, N::Hyphen | N::Idna(_))),
        ("a_b.example.com".into(), |n| matches!(n, N::LabelCharacters | N::Idna(_))),
        ("a b.example.com".into(), |n| matches!(n, N::LabelCharacters | N::Idna(_))),
    ];
    for (name, rule) in cases {
        let err = e.svc.add_domain(&ann, h.id, &name).await.unwrap_err();
        assert_eq!(err.code(), "invalid_domain", "{name}");
        let Error::Domain(DomainError::Invalid(n)) = &err else { panic!("{name}: {err:?}") };
        assert!(rule(n), "{name}: {n:?}");
        assert!(!err.to_string().is_empty());
    }
    assert!(e.svc.list_domains(&ann, h.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn only_the_owner_and_admins_see_or_change_a_sites_domains() {
    let e = env().await;
    let [boss, ann, eve] = e.users(["boss", "ann", "eve"]).await;
    assert!(boss.is_admin && !ann.is_admin && !eve.is_admin);
    let h = e.running_site(&ann, "private").await;
    let d = e.svc.add_domain(&ann, h.id, "private.example.com").await.unwrap();

    assert!(matches!(e.svc.list_domains(&eve, h.id).await, Err(Error::NotFound("hosting"))));
    assert!(matches!(e.svc.add_domain(&eve, h.id, "evil.example.com").await, Err(Error::NotFound("hosting"))));
    assert!(matches!(e.svc.delete_domain(&eve, h.id, d.id).await, Err(Error::NotFound("hosting"))));
    assert!(matches!(e.svc.check_domain_now(&eve, h.id, d.id).await, Err(Error::NotFound("hosting"))));
    assert!(matches!(e.svc.set_hsts(&eve, h.id, true).await, Err(Error::NotFound("hosting"))));
    // A domain is reached through its own site only.
    let other = e.running_site(&eve, "eves").await;
    assert!(matches!(e.svc.delete_domain(&eve, other.id, d.id).await, Err(Error::NotFound("domain"))));
    assert!(matches!(e.svc.check_domain_now(&eve, other.id, d.id).await, Err(Error::NotFound("domain"))));

    // An admin acts on anyone's; what they add counts for the site's owner.
    assert_eq!(e.svc.list_domains(&boss, h.id).await.unwrap().len(), 1);
    let added = e.svc.add_domain(&boss, h.id, "second.example.com").await.unwrap();
    assert_eq!(e.svc.store().domain(added.id).await.unwrap().unwrap().user_id, ann.user_id);
    assert_eq!(added.verification.txt_value, e.svc.domain_txt_value(ann.user_id, "second.example.com").await.unwrap());
    let checked = e.svc.check_domain_now(&boss, h.id, d.id).await.unwrap();
    assert!(checked.next_check_at.unwrap() >= d.next_check_at.unwrap());
    e.svc.delete_domain(&boss, h.id, added.id).await.unwrap();
    assert_eq!(e.svc.list_domains(&ann, h.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn check_now_schedules_a_look_at_once_and_wakes_the_checker() {
    let e = env().await;
    let [_boss, ann] = e.users(["boss", "ann"]).await;
    let h = e.running_site(&ann, "soon").await;
    let d = e.svc.add_domain(&ann, h.id, "soon.example.com").await.unwrap();
    let later = service::db::now_ms() + 3_600_000;
    e.svc.store().update_domain_state(d.id, DomainState::Failed, None, Some("no CNAME or TXT record".into()), Some(later), 2).await.unwrap();
    assert!(e.svc.store().domains_due(service::db::now_ms(), Duration::from_secs(0)).await.unwrap().is_empty());
    let woken = e.svc.domain_checks().notified();
    let v = e.svc.check_domain_now(&ann, h.id, d.id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), woken).await.expect("the checker is woken");
    assert_eq!(v.state, DomainState::Failed);
    assert_eq!(v.last_error.as_deref(), Some("no CNAME or TXT record"));
    assert!(v.next_check_at.unwrap() <= service::db::now_ms());
    let due = e.svc.store().domains_due(service::db::now_ms(), Duration::from_secs(0)).await.unwrap();
    assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), [d.id]);
}

#[tokio::test]
async fn domains_due_are_the_ones_to_check_and_the_certificates_to_renew() {
    let e = env_limit(10).await;
    let [_boss, ann] = e.users(["boss", "ann"]).await;
    let h = e.running_site(&ann, "due").await;
    let now = service::db::now_ms();
    let day = 86_400_000;
    let mut ids = Vec::new();
    for n in ["a", "b", "c", "d", "e"] {
        ids.push(e.svc.add_domain(&ann, h.id, &format!("{n}.example.com")).await.unwrap().id);
    }
    let s = e.svc.store();
    // a: waiting, due now (as added). b: waiting, not before tomorrow.
    s.update_domain_state(ids[1], DomainState::WaitingDns, None, None, Some(now + day), 0).await.unwrap();
    // c: active, its certificate good for 60 days. d: active, 10 days left.
    for (i, left) in [(2, 60), (3, 10)] {
        s.update_domain_state(ids[i], DomainState::Active, Some(DomainMethod::Cname), None, None, 0).await.unwrap();
        s.set_domain_cert(ids[i], Some(now + left * day)).await.unwrap();
    }
    // e: verified, its certificate to issue now.
    s.update_domain_state(ids[4], DomainState::Verified, Some(DomainMethod::Txt), None, Some(now), 0).await.unwrap();
    let due = s.domains_due(now + 1, Duration::from_secs(30 * 86_400)).await.unwrap();
    let mut got: Vec<i32> = due.iter().map(|d| d.id).collect();
    got.sort();
    assert_eq!(got, [ids[0], ids[3], ids[4]]);
    let verified = s.domain(ids[4]).await.unwrap().unwrap();
    assert!(verified.verified_at.is_some(), "set when it first routes");
    assert_eq!(verified.method, Some(DomainMethod::Txt));
}

#[tokio::test]
async fn the_site_route_carries_only_proven_domains_with_their_certificates_and_hsts() {
    let e = env().await;
    let [_boss, ann] = e.users(["boss", "ann"]).await;
    let h = e.running_site(&ann, "routed").await;
    let waiting = e.svc.add_domain(&ann, h.id, "waiting.example.com").await.unwrap();
    let failed = e.svc.add_domain(&ann, h.id, "failed.example.com").await.unwrap();
    let proven = e.svc.add_domain(&ann, h.id, "proven.example.com").await.unwrap();
    let s = e.svc.store();
    s.update_domain_state(failed.id, DomainState::Failed, None, Some("no record".into()), None, 1).await.unwrap();
    s.update_domain_state(proven.id, DomainState::Verified, Some(DomainMethod::Cname), None, None, 0).await.unwrap();

    let route = e.svc.site_route(h.id).await.unwrap().expect("a running site has a route");
    assert!(!route.hsts);
    assert_eq!(route.domains.len(), 1, "{:?}", route.domains);
    assert_eq!((route.domains[0].id, route.domains[0].name.as_str()), (proven.id, "proven.example.com"));
    assert!(route.domains[0].tls.is_none(), "no certificate yet: HTTP only");
    assert!(!route.domains.iter().any(|d| d.id == waiting.id || d.id == failed.id));

    // Its certificate's files are there: HTTPS, HTTP redirected.
    let (chain, key) = domain_cert_files(&e.svc.config().data_dir, proven.id);
    std::fs::create_dir_all(chain.parent().unwrap()).unwrap();
    std::fs::write(&chain, "chain").unwrap();
    std::fs::write(&key, "key").unwrap();
    s.update_domain_state(proven.id, DomainState::Active, Some(DomainMethod::Cname), None, None, 0).await.unwrap();
    let v = e.svc.set_hsts(&ann, h.id, true).await.unwrap();
    assert!(v.hsts);
    assert!(e.svc.get(&ann, h.id).await.unwrap().hsts);
    let route = e.svc.site_route(h.id).await.unwrap().unwrap();
    assert!(route.hsts);
    let tls = route.domains[0].tls.as_ref().expect("the certificate is served");
    assert_eq!((tls.cert.chain.as_path(), tls.cert.key.as_path()), (chain.as_path(), key.as_path()));
    assert!(tls.redirect_http && !tls.ocsp_stapling);
    assert!(!e.svc.set_hsts(&ann, h.id, false).await.unwrap().hsts);

    // Removed, its certificate goes with it.
    e.svc.delete_domain(&ann, h.id, proven.id).await.unwrap();
    assert!(!domain_cert_dir(&e.svc.config().data_dir, proven.id).exists());
    assert!(e.svc.site_route(h.id).await.unwrap().unwrap().domains.is_empty());
}

#[tokio::test]
async fn deleting_a_site_removes_its_domains_and_their_certificates() {
    let e = env().await;
    let [_boss, ann] = e.users(["boss", "ann"]).await;
    let h = e.running_site(&ann, "gone").await;
    let d = e.svc.add_domain(&ann, h.id, "gone.example.com").await.unwrap();
    let dir = domain_cert_dir(&e.svc.config().data_dir, d.id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("key.pem"), "key").unwrap();
    e.svc
        .store()
        .upsert_certificate(service::store::CertificateRow {
            label: format!("domain-{}", d.id),
            names: "[\"gone.example.com\"]".into(),
            source: vmw_types::CertSource::Acme,
            not_before: None,
            not_after: None,
            failures: 0,
            last_error: None,
            next_try_at: None,
            updated_at: 0,
        })
        .await
        .unwrap();
    assert!(e.svc.store().certificate(&format!("domain-{}", d.id)).await.unwrap().is_some());

    e.svc.action(&ann, h.id, Operation::Delete).await.unwrap();
    assert!(e.svc.wait_settled(&ann, h.id, Duration::from_secs(60)).await.unwrap().is_none(), "the site is gone");
    assert!(e.svc.store().domain(d.id).await.unwrap().is_none());
    assert!(!dir.exists(), "its certificate's files are removed");
    assert!(e.svc.store().certificate(&format!("domain-{}", d.id)).await.unwrap().is_none());
    // The name is free for anyone now.
    let [bob] = e.users(["bob"]).await;
    let b = e.running_site(&bob, "bobs").await;
    e.svc.add_domain(&bob, b.id, "gone.example.com").await.unwrap();
}

#[tokio::test]
async fn certificate_rows_are_written_read_and_replaced() {
    let e = env().await;
    let s = e.svc.store();
    let mut row = service::store::CertificateRow {
        label: "sites".into(),
        names: "[\"*.sites.test\"]".into(),
        source: vmw_types::CertSource::LocalCa,
        not_before: Some(1),
        not_after: Some(2),
        failures: 0,
        last_error: None,
        next_try_at: None,
        updated_at: 3,
    };
    s.upsert_certificate(row.clone()).await.unwrap();
    row.source = vmw_types::CertSource::Acme;
    row.failures = 2;
    row.last_error = Some("rate limited".into());
    s.upsert_certificate(row.clone()).await.unwrap();
    assert_eq!(s.certificate("sites").await.unwrap(), Some(row.clone()));
    assert_eq!(s.certificates().await.unwrap(), vec![row]);
    s.delete_certificate("sites").await.unwrap();
    assert!(s.certificate("sites").await.unwrap().is_none());
}

#[tokio::test]
async fn a_site_being_deleted_takes_no_new_domain() {
    let e = env().await;
    let [_boss, ann] = e.users(["boss", "ann"]).await;
    let h = e.running_site(&ann, "leaving").await;
    e.svc.faults().set_op_delay(Duration::from_millis(800));
    e.svc.action(&ann, h.id, Operation::Delete).await.unwrap();
    let err = e.svc.add_domain(&ann, h.id, "late.example.com").await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. } | Error::NotFound(_)), "{err:?}");
    e.svc.faults().set_op_delay(Duration::ZERO);
    assert!(e.svc.wait_settled(&ann, h.id, Duration::from_secs(60)).await.unwrap().is_none());
}
