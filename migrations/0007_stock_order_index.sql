-- Reservation takes codes earliest expiry first, then by id: an index in exactly that order
-- lets it read the first N in-vault codes instead of sorting the whole vault.
CREATE INDEX codes_stock_order ON codes (operator_id, product, expires_on, id) WHERE state = 'in_vault';
DROP INDEX codes_stock;
