-- An effect's log entry no longer waits for the log's lock. Until now every append took the
-- advisory lock that orders the tree and held it until its transaction ended, so appends
-- stood in line through each other's COMMIT: with 8 writers on 2 cores, the lock's hand-over
-- bound the log at about 8,500 messages a second, against 21,000-30,000 for the same inserts
-- without it.
--
-- A message is now queued: in the transaction of the effect it records, it is written to
-- log_messages with a row in log_pending holding its leaf hash, and nothing is locked. The
-- effect and its message commit together, or neither does. Sequencing then gives every
-- committed queued message its place in the tree: log_sequence takes the lock, moves what is
-- pending into log_leaves in one statement (in the order of the messages' ids) and stores the
-- inner nodes the new leaves complete, then commits. One sequencing serves every message
-- committed before it started, so the lock is taken once per batch, not once per message.
-- A receipt, which names its message's entry and proves it, is made after its message is
-- sequenced; a checkpoint is signed after sequencing. log_append (migration 0013), which
-- gives the index inside the caller's transaction, is kept for the few writers that must
-- store it with their effect (a shipment, its document's entry); both are ordered by the
-- same lock.

CREATE TABLE log_pending (
    message   bigint PRIMARY KEY,
    leaf_hash bytea NOT NULL CHECK (octet_length(leaf_hash) = 32)
);
-- Every sequencing empties it: the center's sequencer vacuums it every second; autovacuum
-- too, at its own pace, whenever a thousand rows are dead.
ALTER TABLE log_pending SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

-- The message each recorded document was logged as, for the receipt made after the commit
-- (the document's entry index, once sequenced, is log_leaves.idx WHERE message = this).
ALTER TABLE messages ADD COLUMN log_message bigint;

-- log_sequence appends every committed queued message to the tree and returns how many. It
-- takes the log's lock and holds it until the caller's transaction ends: call it as a
-- statement of its own. Under the lock, each statement sees every transaction committed
-- before it (READ COMMITTED), so a message still being written waits for the next run.
CREATE FUNCTION log_sequence() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    first bigint;
    n bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'log_sequence: the exchange log is written in READ COMMITTED transactions, not %',
            current_setting('transaction_isolation') USING ERRCODE = 'serialization_failure';
    END IF;
    PERFORM pg_advisory_xact_lock(7412000005);
    SELECT coalesce(max(idx) + 1, 0) INTO first FROM log_leaves;
    WITH p AS (DELETE FROM log_pending RETURNING message, leaf_hash)
    INSERT INTO log_leaves (idx, leaf_hash, message)
        SELECT first + row_number() OVER (ORDER BY message) - 1, leaf_hash, message FROM p;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM log_build_nodes();
    END IF;
    RETURN n;
END
$$;

-- log_build_nodes as in migration 0013, but the run's left siblings — the right edge of the
-- tree before the run, one stored node per set bit of its size — are read in one statement
-- instead of one lookup per level as the first leaves of the run climbed: a sequencing builds
-- the nodes of a few leaves at a time, and those lookups were most of its cost.
CREATE OR REPLACE FUNCTION log_build_nodes() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    b bigint;
    s bigint;
    st_level int[];
    st_hash bytea[];
    top int;
    node_level smallint[] := '{}';
    node_idx bigint[] := '{}';
    node_hash bytea[] := '{}';
    nodes int := 0;
    leaf record;
    i bigint;
    lvl int;
    h bytea;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'log_build_nodes: the exchange log is written in READ COMMITTED transactions, not %',
            current_setting('transaction_isolation') USING ERRCODE = 'serialization_failure';
    END IF;
    PERFORM pg_advisory_xact_lock(7412000005);
    SELECT coalesce(2 * (max(idx) + 1), 0) INTO b FROM log_nodes WHERE level = 1;
    SELECT coalesce(max(idx) + 1, 0) INTO s FROM log_leaves;
    IF s - b < 2 THEN
        RETURN 0; -- a lone leaf at b completes nothing
    END IF;
    -- The tree of b leaves (b even) is the perfect subtrees of its set bits, from the largest:
    -- bit k set, the node at level k whose leaves end at b.
    SELECT coalesce(array_agg(e.level ORDER BY e.level DESC), '{}'), coalesce(array_agg(n.hash ORDER BY e.level DESC), '{}')
        INTO st_level, st_hash
        FROM (SELECT k AS level, (b >> k) - 1 AS idx FROM generate_series(1, 62) AS k WHERE (b >> k) & 1 = 1) AS e
        JOIN log_nodes n ON n.level = e.level AND n.idx = e.idx;
    top := cardinality(st_level);
    IF top <> bit_count(b::bit(64)) THEN
        RAISE EXCEPTION 'log_build_nodes: the tree of % leaves has % of its edge nodes stored', b, top;
    END IF;
    FOR leaf IN SELECT idx, leaf_hash FROM log_leaves WHERE idx >= b AND idx < s ORDER BY idx LOOP
        i := leaf.idx;
        h := leaf.leaf_hash;
        lvl := 0;
        WHILE i % 2 = 1 LOOP
            -- The left sibling is on the stack: the previous leaf, a node this run completed,
            -- or the edge.
            IF top = 0 OR st_level[top] <> lvl THEN
                RAISE EXCEPTION 'log_build_nodes: no left sibling of node %/% on the stack', lvl, i;
            END IF;
            h := sha256('\x01'::bytea || st_hash[top] || h);
            top := top - 1;
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
    IF nodes > 0 THEN
        INSERT INTO log_nodes (level, idx, hash) SELECT * FROM unnest(node_level, node_idx, node_hash);
    END IF;
    RETURN nodes;
END
$$;
