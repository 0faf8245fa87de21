-- The signed exchange log: every message the center accepts or emits, byte-exact, as a leaf of
-- an append-only RFC 6962 Merkle tree. The tree's right edge (its compact range) is kept with
-- its size, every completed inner node is stored, so roots and proofs for any size are cheap.

CREATE TABLE log_state (
    id     boolean PRIMARY KEY DEFAULT true CHECK (id),
    size   bigint NOT NULL CHECK (size >= 0),
    edge   bytea[] NOT NULL       -- the compact range [0, size): one hash per set bit of size
);
INSERT INTO log_state (size, edge) VALUES (0, '{}');

CREATE TABLE log_entries (
    idx        bigint PRIMARY KEY CHECK (idx >= 0),
    leaf_hash  bytea NOT NULL CHECK (length(leaf_hash) = 32),
    type       text NOT NULL,
    sender     text NOT NULL,
    recipient  text NOT NULL,
    message_id text NOT NULL,
    logged_at  timestamptz NOT NULL,
    data       bytea NOT NULL
);
CREATE INDEX log_entries_message ON log_entries (message_id);

CREATE TABLE log_nodes (
    level smallint NOT NULL CHECK (level > 0),
    idx   bigint NOT NULL CHECK (idx >= 0),
    hash  bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);

CREATE TABLE log_checkpoints (
    size       bigint PRIMARY KEY,
    root       bytea NOT NULL CHECK (length(root) = 32),
    note       bytea NOT NULL,
    created_at timestamptz NOT NULL
);

-- Append-only in the database too: no update or delete of what was logged. (An administrator
-- who disables this is caught by the auditor's verification, which trusts none of it.)
CREATE FUNCTION log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the exchange log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;
CREATE TRIGGER log_entries_append_only BEFORE UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION log_append_only();
CREATE TRIGGER log_nodes_append_only BEFORE UPDATE OR DELETE ON log_nodes
    FOR EACH ROW EXECUTE FUNCTION log_append_only();
