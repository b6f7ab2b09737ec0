//! API tokens: kept as hashes, one live per name, found by hash until revoked.

use std::collections::BTreeSet;

use shipledger_store::{NewApiToken, StoreError, TokenRole, TokenScope};

use crate::harness::{TestDb, t};

fn token(name: &str, hash: &str, role: TokenRole, scope: TokenScope) -> NewApiToken {
    NewApiToken { name: name.into(), role, scope, hash: hash.into(), prefix: format!("slt_{}", &hash[..4]) }
}

pub async fn a_token_is_found_by_its_hash_until_revoked_and_its_name_is_free_again(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let only_acme = TokenScope::Only(BTreeSet::from(["acme".to_string()]));
    let ops = store.create_api_token(token("ops-desk", "aaaa1111", TokenRole::Operator, only_acme.clone()), t(0)).await?;
    let admin = store.create_api_token(token("admin", "bbbb2222", TokenRole::Admin, TokenScope::All), t(1)).await?;
    assert_eq!((ops.role, ops.scope.clone(), ops.revoked_at), (TokenRole::Operator, only_acme, None));
    assert!(ops.scope.allows("acme") && !ops.scope.allows("beta"));
    assert!(admin.scope.allows("beta"));
    assert!(TokenRole::Admin.allows(TokenRole::Operator) && !TokenRole::Viewer.allows(TokenRole::Operator));

    // A second live token of the same name is refused.
    let taken = store.create_api_token(token("ops-desk", "cccc3333", TokenRole::Viewer, TokenScope::All), t(2)).await;
    assert!(matches!(taken, Err(StoreError::TokenNameTaken { .. })), "{taken:?}");

    assert_eq!(store.api_token_by_hash("aaaa1111").await?.map(|r| r.id), Some(ops.id));
    assert_eq!(store.api_token_by_hash("nope").await?, None);
    store.touch_api_token(ops.id, t(10)).await?;
    store.touch_api_token(ops.id, t(20)).await?; // within the minute: not written again
    assert_eq!(store.api_token_by_hash("aaaa1111").await?.unwrap().last_used_at, Some(t(10)));

    let revoked = store.revoke_api_token(ops.id, t(30)).await?;
    assert_eq!(revoked.revoked_at, Some(t(30)));
    assert_eq!(store.api_token_by_hash("aaaa1111").await?, None, "a revoked token opens nothing");
    assert!(matches!(store.revoke_api_token(ops.id, t(31)).await, Err(StoreError::NotFound { .. })));
    // Its name is free for a new token; the revoked one stays listed.
    store.create_api_token(token("ops-desk", "dddd4444", TokenRole::Operator, TokenScope::All), t(40)).await?;
    let names: Vec<_> = store.list_api_tokens().await?.into_iter().map(|r| (r.name, r.revoked_at.is_some())).collect();
    assert_eq!(names, vec![("ops-desk".into(), true), ("admin".into(), false), ("ops-desk".into(), false)]);
    Ok(())
}
