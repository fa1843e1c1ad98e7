//! `parley netcheck` names each NAT kind of the lab correctly, against
//! the real `parley-server` and `parley` binaries.

use std::net::IpAddr;

use testkit::natlab::Nat;
use testkit::parley;

#[test]
fn netcheck_names_every_nat_kind() {
    let Some(mut served) = parley::served_lab("netcheck") else {
        return;
    };
    let lab = &mut served.lab;

    let open = lab.public_host("open").unwrap();
    let r = parley::netcheck(&open).unwrap();
    assert_eq!((r.nat, r.mapping.as_str()), (false, "none"), "{}", r.json);
    assert_eq!(r.public.ip(), IpAddr::V4(open.ip));

    for nat in Nat::ALL {
        let mut router = lab.router("r", nat).unwrap();
        let host = lab.host_behind(&mut router, "h").unwrap();
        let r = parley::netcheck(&host).unwrap_or_else(|e| panic!("{nat}: {e}"));
        let want = if nat.endpoint_independent_mapping() {
            "endpoint-independent"
        } else {
            "endpoint-dependent"
        };
        assert!(r.nat, "{nat}: {}", r.json);
        assert_eq!(r.mapping, want, "{nat}: {}", r.json);
        assert_eq!(
            r.public.ip(),
            IpAddr::V4(router.node.ip),
            "{nat}: {}",
            r.json
        );
    }

    // A NAT behind a NAT: the outer router's address, and the mapping of
    // the two together (symmetric if either is).
    for (outer, inner, want) in [
        (Nat::Masquerade, Nat::Masquerade, "endpoint-independent"),
        (Nat::Masquerade, Nat::Symmetric, "endpoint-dependent"),
        (Nat::Symmetric, Nat::Masquerade, "endpoint-dependent"),
    ] {
        let mut o = lab.router("outer", outer).unwrap();
        let mut i = lab.router_behind(&mut o, "inner", inner).unwrap();
        let host = lab.host_behind(&mut i, "h").unwrap();
        let r = parley::netcheck(&host).unwrap();
        assert_eq!(r.mapping, want, "{outer} over {inner}: {}", r.json);
        assert_eq!(r.public.ip(), IpAddr::V4(o.node.ip), "{}", r.json);
    }
}

/// A third-party ICE agent (aioice, from PyPI) behind each NAT kind
/// gathers a server-reflexive candidate from the server: the router's
/// public address, related to the host's own.
#[test]
fn an_ice_agent_behind_a_nat_gathers_its_public_candidate() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("venv-aioice");
    let Some(python) = testkit::python::venv_or_skip(&dir, "aioice", testkit::python::AIOICE)
    else {
        return;
    };
    let Some(mut served) = parley::served_lab("ice") else {
        return;
    };
    let lab = &mut served.lab;
    for nat in [Nat::Masquerade, Nat::Symmetric] {
        let mut router = lab.router("r", nat).unwrap();
        let host = lab.host_behind(&mut router, "h").unwrap();
        let port = parley::PORT.to_string();
        let w = testkit::python::aioice(
            &mut host.command(&python.to_string_lossy()),
            &["gather", "203.0.113.1", &port],
            &nat.to_string(),
        );
        // "srflx HOST PORT related HOST PORT"
        assert_eq!(w[0], "srflx");
        assert_eq!(w[1], router.node.ip.to_string(), "{nat}: {w:?}");
        assert_eq!(w[4], host.ip.to_string(), "{nat}: {w:?}");
    }
}
