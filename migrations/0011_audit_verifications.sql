-- What auditors report of their verifications of the exchange log: who (from the client
-- certificate that made the report, never from its body), when, the checkpoint verified, how
-- many entries were checked, the outcome, and whether the reported root is the center's own
-- tree at that size. Append-only, like the log: a record of verifications that could be edited
-- would prove nothing.

CREATE TABLE audit_verifications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reporter_role   text NOT NULL,
    reporter        text NOT NULL,          -- the certificate's entity
    reporter_serial text NOT NULL,
    reported_at     timestamptz NOT NULL,
    size            bigint NOT NULL CHECK (size >= 0),
    root            bytea CHECK (length(root) = 32),   -- null when the run failed before a root was verified
    checkpoint      bytea,                  -- the signed note verified, as the auditor saw it
    from_size       bigint NOT NULL CHECK (from_size >= 0 AND from_size <= size),
    entries_checked bigint NOT NULL CHECK (entries_checked >= 0),
    outcome         text NOT NULL CHECK (outcome IN ('ok', 'failed')),
    reason          text NOT NULL DEFAULT '' CHECK (outcome = 'ok' OR reason <> ''),
    duration_ms     bigint NOT NULL CHECK (duration_ms >= 0),
    root_matches    boolean,                -- null: no root reported
    center_root     bytea,                  -- the center's root at size, when it has one
    CHECK (outcome = 'failed' OR root IS NOT NULL),
    CHECK ((root IS NULL) = (root_matches IS NULL))
);
CREATE INDEX audit_verifications_recent ON audit_verifications (reported_at DESC, id DESC);

CREATE TRIGGER audit_verifications_append_only BEFORE UPDATE OR DELETE ON audit_verifications
    FOR EACH ROW EXECUTE FUNCTION log_append_only();

-- A reported root that is not the center's tree (a split view, or a log forged for the
-- auditor), or a verification that failed, raises a security alarm about the exchange log in
-- the same transaction as the report, with the alarms' own rule: one unresolved alarm per kind
-- and subject, repeats counted.
CREATE FUNCTION audit_verifications_alarm() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    msg text;
BEGIN
    IF NEW.root_matches IS FALSE THEN
        msg := format('%s %s verified a checkpoint of size %s whose root %s is not the center''s tree at that size: a split view or a forged log',
            NEW.reporter_role, NEW.reporter, NEW.size, left(encode(NEW.root, 'hex'), 16));
    ELSE
        msg := format('%s %s reports the exchange log does NOT verify: %s', NEW.reporter_role, NEW.reporter, NEW.reason);
    END IF;
    INSERT INTO alarms (kind, subject, message, first_at, last_at) VALUES ('security', 'exchange_log', msg, NEW.reported_at, NEW.reported_at)
        ON CONFLICT (kind, subject) WHERE state <> 'resolved'
        DO UPDATE SET occurrences = alarms.occurrences + 1, last_at = EXCLUDED.last_at, message = EXCLUDED.message;
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_verifications_alarm AFTER INSERT ON audit_verifications
    FOR EACH ROW WHEN (NEW.root_matches IS FALSE OR NEW.outcome <> 'ok')
    EXECUTE FUNCTION audit_verifications_alarm();
