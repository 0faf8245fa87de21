-- A shipment's signed document is kept once: in the exchange log, where it is appended in the
-- shipment's own transaction. The shipment names its log entry instead of holding a second copy,
-- and a StockOrder's answer (that Shipment) is named the same way instead of a third copy in
-- messages.response. A shipment of 1,000 codes is ~90 kB: writing it three times was a third of
-- what a shipment wrote.

ALTER TABLE shipments ADD COLUMN log_index bigint REFERENCES log_entries (idx);
ALTER TABLE messages ADD COLUMN response_index bigint REFERENCES log_entries (idx);

-- Shipments sent before: the log holds the same bytes (logged with the shipment).
UPDATE shipments s SET log_index = l.idx FROM log_entries l
    WHERE l.type = 'Shipment' AND l.message_id = s.message_id::text AND l.data = s.document;
DO $$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(id, ', ') INTO missing FROM shipments WHERE log_index IS NULL;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'shipments whose signed document is not in the exchange log: %', missing
            USING ERRCODE = 'check_violation';
    END IF;
END
$$;
-- Answers to StockOrders taken before: the same bytes are the shipment's log entry.
UPDATE messages m SET response_index = l.idx, response = NULL FROM log_entries l
    WHERE m.type = 'StockOrder' AND m.response IS NOT NULL AND l.type = 'Shipment'
    AND l.recipient = m.sender AND l.data = m.response;
ALTER TABLE shipments DROP COLUMN document;

-- The entry is appended last in the shipment's transaction (the log's lock is held briefly), so
-- the reference is checked at commit: a shipment commits only with its own Shipment logged.
CREATE FUNCTION shipment_logged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM shipments s JOIN log_entries l ON l.idx = s.log_index
            WHERE s.id = NEW.id AND l.type = 'Shipment' AND l.message_id = s.message_id::text) THEN
        RAISE EXCEPTION 'shipment % has no Shipment of its own in the exchange log', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER shipments_logged AFTER INSERT ON shipments
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION shipment_logged();
