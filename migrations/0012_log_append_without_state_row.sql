-- The exchange log's appends no longer lock and rewrite one shared row. Every append used to
-- read log_state FOR UPDATE and update that same row, so concurrent appenders queued on a row
-- whose dead versions piled up, and PostgreSQL spent twice the CPU per append that it spent
-- with one writer. The tree's state is now derived from what is stored anyway: its size is the
-- highest entry index + 1, and its right edge (one perfect subtree per set bit of the size) is
-- made of completed subtrees, all of them in log_nodes (or a leaf, in log_entries). Appends
-- are serialised by a transaction-scoped advisory lock (7412000005) and only INSERT, so the
-- append-only triggers on log_entries and log_nodes are unchanged.

-- The stored state must agree with the entries and nodes before it is dropped.
DO $$
DECLARE
    s bigint;
    n bigint;
    hi bigint;
    lvl int := 0;
BEGIN
    SELECT size INTO s FROM log_state;
    SELECT count(*), coalesce(max(idx) + 1, 0) INTO n, hi FROM log_entries;
    IF s <> n OR s <> hi THEN
        RAISE EXCEPTION 'log_state says % entries, log_entries holds % up to index %', s, n, hi - 1
            USING ERRCODE = 'check_violation';
    END IF;
    WHILE (s >> lvl) > 0 LOOP
        IF lvl > 0 AND ((s >> lvl) & 1) = 1
                AND NOT EXISTS (SELECT 1 FROM log_nodes WHERE level = lvl AND idx = (s >> lvl) - 1) THEN
            RAISE EXCEPTION 'the log''s right edge misses node %/%', lvl, (s >> lvl) - 1
                USING ERRCODE = 'check_violation';
        END IF;
        lvl := lvl + 1;
    END LOOP;
END
$$;

DROP TABLE log_state;

-- A message of a few kB (most are 2-4 kB) stays in the entry's row: not compressed (signed XML
-- with base64 values rarely shrinks by the quarter pglz asks, so the attempt was wasted) and not
-- moved to the TOAST table, whose row and index inserts were a fifth of an append's cost. Larger
-- messages (shipments) are compressed and moved out as before. Rows already stored are unchanged.
ALTER TABLE log_entries SET (toast_tuple_target = 8160);

-- What log_state.size was, for readers and tools that ask it.
CREATE VIEW log_state AS SELECT coalesce(max(idx) + 1, 0) AS size FROM log_entries;

-- log_append appends entries in the caller's transaction and returns the index of the first.
-- leaves are the entries' RFC 6962 leaf hashes, SHA-256(0x00 || data), computed by the caller
-- before the lock is taken; the inner nodes completed by the append, SHA-256(0x01 || left ||
-- right), are computed here. The lock is held until the caller's transaction ends. It takes its
-- snapshot after the lock (each statement of a function does, in READ COMMITTED), so it sees the
-- entries of every append that held the lock before; under REPEATABLE READ or SERIALIZABLE the
-- snapshot predates the lock, and it refuses.
CREATE FUNCTION log_append(leaves bytea[], types text[], senders text[], recipients text[],
        message_ids text[], logged_at timestamptz[], data bytea[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n int := cardinality(leaves);
    first bigint;
    -- The subtrees completed by this append and not yet merged: a compact range, its lowest
    -- level on top. A left sibling not on it was completed before, and is stored.
    st_level int[] := '{}';
    st_hash bytea[] := '{}';
    top int := 0;
    node_level smallint[] := '{}';
    node_idx bigint[] := '{}';
    node_hash bytea[] := '{}';
    nodes int := 0;
    i bigint;
    lvl int;
    h bytea;
    sib bytea;
BEGIN
    IF n IS NULL OR n = 0 THEN
        RAISE EXCEPTION 'log_append: nothing to append';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'log_append: the exchange log is appended in READ COMMITTED transactions, not %',
            current_setting('transaction_isolation') USING ERRCODE = 'serialization_failure';
    END IF;
    PERFORM pg_advisory_xact_lock(7412000005);
    SELECT coalesce(max(idx) + 1, 0) INTO first FROM log_entries;
    FOR k IN 1..n LOOP
        i := first + k - 1;
        h := leaves[k];
        lvl := 0;
        WHILE i % 2 = 1 LOOP
            IF top > 0 AND st_level[top] = lvl THEN
                sib := st_hash[top];
                top := top - 1;
            ELSIF lvl = 0 THEN
                SELECT leaf_hash INTO STRICT sib FROM log_entries WHERE idx = i - 1;
            ELSE
                SELECT hash INTO STRICT sib FROM log_nodes WHERE level = lvl AND idx = i - 1;
            END IF;
            h := sha256('\x01'::bytea || sib || h);
            i := i / 2;
            lvl := lvl + 1;
            nodes := nodes + 1;
            node_level[nodes] := lvl;
            node_idx[nodes] := i;
            node_hash[nodes] := h;
        END LOOP;
        top := top + 1;
        st_level[top] := lvl;
        st_hash[top] := h;
    END LOOP;
    INSERT INTO log_entries (idx, leaf_hash, type, sender, recipient, message_id, logged_at, data)
        SELECT first + u.o - 1, u.l, u.t, u.s, u.r, u.m, u.a, u.d
        FROM unnest(leaves, types, senders, recipients, message_ids, logged_at, data)
            WITH ORDINALITY AS u(l, t, s, r, m, a, d, o);
    IF nodes > 0 THEN
        INSERT INTO log_nodes (level, idx, hash) SELECT * FROM unnest(node_level, node_idx, node_hash);
    END IF;
    RETURN first;
END
$$;
