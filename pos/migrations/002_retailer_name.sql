-- The retailer's name as its shipments carry it, for the tickets; '' for shipments of centers
-- that did not send it.
ALTER TABLE shipments ADD COLUMN retailer_name TEXT NOT NULL DEFAULT '';
