-- Which vendor cards hold a share of each shipment's key, so that a card enrolled later gets
-- shares for the stock already at its retailer's terminals at the next sync.
ALTER TABLE shipments ADD COLUMN vendors text[] NOT NULL DEFAULT '{}';
