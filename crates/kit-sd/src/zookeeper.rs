//! ZooKeeper: not written yet (RFC 0009).
