//! DNS: RFC 2136 dynamic updates (TSIG-signed) for ACME DNS-01 challenges, and the lookups that
//! prove a custom domain's ownership (CNAME to the site, or a TXT token).
