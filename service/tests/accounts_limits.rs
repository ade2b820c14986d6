//! Token creation is rate-limited per user (a leaked session cannot mint tokens in bulk).
mod common;

use service::Error;
use service::accounts::AsActor;
use service::accounts::{Accounts, NewUser};

#[tokio::test]
async fn at_most_ten_api_tokens_an_hour_per_user() {
    let db = common::TestDb::new().await;
    let acc = Accounts::new(db.conn());
    let u = acc
        .register(NewUser { email: "tok@example.com".into(), username: "tok".into(), password: "correct horse battery".into() })
        .await
        .unwrap();
    let other = acc
        .register(NewUser { email: "tok2@example.com".into(), username: "tok2".into(), password: "correct horse battery".into() })
        .await
        .unwrap();
    for i in 0..10 {
        acc.create_api_token(&u.actor(), &format!("t{i}")).await.unwrap();
    }
    let eleventh = acc.create_api_token(&u.actor(), "t10").await;
    assert!(matches!(eleventh, Err(Error::RateLimited { retry_after_secs }) if retry_after_secs > 0), "{eleventh:?}");
    assert_eq!(acc.list_api_tokens(&u.actor()).await.unwrap().len(), 10);
    acc.create_api_token(&other.actor(), "mine").await.expect("other users are not affected");
}
