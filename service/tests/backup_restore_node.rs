//! Restoring a backup on another node (issue 31), two nodes on libvirt's test driver (the node
//! of the settings and one added with a private test driver and a data folder of its own): the
//! site moves (its row re-homed with ports of the new node, its disk the backup's there, its
//! old VM and files gone from the old node); who may move it (an administrator, or the owner
//! once its node is drained); the refusals when no other node can take it.
//!
//! Without restic the tests say they are skipped (and fail when REQUIRE_RESTIC=1).
use service::Error;
use service::hosting::nodes::NewNode;
use service::hosting::HostingState;
use vmw_types::RestoreTarget;

mod support;
use support::backups::{backed_up, holds, powered_off_site, restic_installed};
use support::env_with;

#[tokio::test]
async fn a_site_restored_on_another_node_moves_there_and_leaves_nothing_on_the_old_one() {
    if !restic_installed("a_site_restored_on_another_node_moves_there_and_leaves_nothing_on_the_old_one") {
        return;
    }
    let e = env_with(|c| {
        c.idle_sleep_secs = 0;
        c.node_memory_mib = Some(4096);
        c.node_disk_gib = Some(1000);
    })
    .await;
    let data = e.svc.config().data_dir.clone();
    let [admin, ann, eve] = e.users(["boss", "ann", "eve"]).await;
    let home = e.svc.node_id();
    let file = data.join("two.xml");
    std::fs::write(&file, "<node/>").unwrap();
    let node = NewNode { name: "two".into(), libvirt_uri: format!("test://{}", file.display()), address: "127.0.0.1".into(), memory_mib: 1024, disk_gib: 1000 };
    let two = e.svc.add_node(&admin, node).await.unwrap();
    let id = powered_off_site(&e, &data, &ann, "ann").await;
    let before = e.settled(&ann, id).await;
    assert_eq!(before.node_id, home, "the node with the most room");
    let b = backed_up(&e, &ann, id).await;
    let to_node = |node_id: Option<i32>| RestoreTarget::Node { node_id };

    // Who and where.
    assert!(matches!(e.svc.restore_backup(&eve, id, b.id, to_node(None)).await, Err(Error::NotFound(_))), "others do not see it");
    let owner = e.svc.restore_backup(&ann, id, b.id, to_node(None)).await;
    assert!(matches!(owner, Err(Error::Conflict { field: Some("target"), .. })), "a healthy node's sites are the admin's to move: {owner:?}");
    let same = e.svc.restore_backup(&admin, id, b.id, to_node(Some(home))).await;
    assert!(matches!(&same, Err(Error::Conflict { field: Some("node_id"), message }) if message.contains("already")), "{same:?}");
    let unknown = e.svc.restore_backup(&admin, id, b.id, to_node(Some(9999))).await;
    assert!(matches!(unknown, Err(Error::Conflict { field: Some("node_id"), .. })), "{unknown:?}");

    // The admin moves it (to the only other node).
    let v = e.svc.restore_backup(&admin, id, b.id, to_node(None)).await.unwrap();
    assert_eq!(v.id, id, "the same site");
    let v = e.settled(&ann, id).await;
    assert_eq!((v.state, v.state_reason.clone()), (HostingState::Running, None));
    assert_eq!(v.node_id, two.id, "re-homed on the other node");
    assert!(v.http_port.is_some() && v.ssh_port.is_some(), "ports of its own there");
    let moved_disk = data.join(format!("nodes/{}/vms/{id}/disk.qcow2", two.id));
    assert!(holds(&moved_disk, 0x5a, "1M", "8M"), "its disk on the new node is the backup's");
    assert!(!e.svc.vm().vm_dir(id).exists(), "nothing of it left on the old node");
    let msgs: Vec<String> = e.svc.events(&ann, id, 0).await.unwrap().into_iter().map(|ev| ev.message).collect();
    assert!(msgs.iter().any(|m| m.contains("the site moved from")), "{msgs:?}");

    // Its node drained: the owner may move it back; then no other node is left for it.
    e.svc.set_node_drained(&admin, two.id, true).await.unwrap();
    e.svc.restore_backup(&ann, id, b.id, to_node(None)).await.unwrap();
    let v = e.settled(&ann, id).await;
    assert_eq!((v.state, v.node_id), (HostingState::Running, home), "{:?}", v.state_reason);
    assert!(!moved_disk.exists(), "the drained node's files removed");
    let none = e.svc.restore_backup(&admin, id, b.id, to_node(None)).await;
    assert!(matches!(&none, Err(Error::Conflict { field: Some("node_id"), message }) if message.contains("no other node")), "{none:?}");
    let report = e.svc.reconcile().await.unwrap();
    let again = e.settled(&ann, id).await;
    assert_eq!((again.state, again.node_id), (HostingState::Running, home), "reconciliation keeps the moved site: {report:?}");
}
