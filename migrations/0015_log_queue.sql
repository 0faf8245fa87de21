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
