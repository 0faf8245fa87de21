-- Alarm notifications: an outbox of webhook deliveries, filled by triggers on alarms in the
-- same transaction as every change of an alarm, whoever makes it (a refusal, a sales-report
-- gap, vault stock, the alarm checker, a manager). A delivery is the alarm as it was when it
-- changed; the notifier sends it, retries it with backoff, and records the outcome.

CREATE TABLE alarm_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- X-Evoucher-Delivery
    alarm_id        bigint NOT NULL REFERENCES alarms (id),
    kind            text NOT NULL,
    subject         text NOT NULL,
    message         text NOT NULL,
    state           text NOT NULL,
    occurrences     integer NOT NULL,
    first_at        timestamptz NOT NULL,
    last_at         timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz,          -- null: at once; while an attempt runs, the end of its lease
    last_error      text,
    delivered_at    timestamptz,
    gave_up_at      timestamptz,
    CHECK (delivered_at IS NULL OR gave_up_at IS NULL)
);
CREATE INDEX alarm_deliveries_pending ON alarm_deliveries (alarm_id, id) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX alarm_deliveries_done ON alarm_deliveries (coalesce(delivered_at, gave_up_at)) WHERE delivered_at IS NOT NULL OR gave_up_at IS NOT NULL;

-- A change not yet tried replaces the one queued before it, so receivers get the latest state
-- and a storm of occurrences (a hostile peer refused a thousand times) makes one delivery, not
-- a thousand. A delivery being tried is left alone (attempts > 0, or locked by a sender).
CREATE FUNCTION alarm_deliveries_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    queued bigint;
BEGIN
    SELECT id INTO queued FROM alarm_deliveries
        WHERE alarm_id = NEW.id AND attempts = 0 AND delivered_at IS NULL AND gave_up_at IS NULL
        ORDER BY id DESC LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        UPDATE alarm_deliveries SET message = NEW.message, state = NEW.state, occurrences = NEW.occurrences,
            last_at = NEW.last_at WHERE id = queued;
    ELSE
        INSERT INTO alarm_deliveries (alarm_id, kind, subject, message, state, occurrences, first_at, last_at)
            VALUES (NEW.id, NEW.kind, NEW.subject, NEW.message, NEW.state, NEW.occurrences, NEW.first_at, NEW.last_at);
    END IF;
    RETURN NULL;
END
$$;

-- Raised, changed state, or counted another occurrence. A new wording alone is not news.
CREATE TRIGGER alarms_raised AFTER INSERT ON alarms
    FOR EACH ROW EXECUTE FUNCTION alarm_deliveries_enqueue();
CREATE TRIGGER alarms_changed AFTER UPDATE ON alarms
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.occurrences IS DISTINCT FROM NEW.occurrences)
    EXECUTE FUNCTION alarm_deliveries_enqueue();

-- The expiring-stock check reads only the codes that expire soon, not the whole vault.
CREATE INDEX codes_expiring ON codes (expires_on, operator_id, product) WHERE state IN ('in_vault', 'shipped', 'delivered');
