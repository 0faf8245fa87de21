-- Retailers, their terminals and vendor cards, per-terminal stock levels, shipments of codes
-- re-encrypted for one terminal, sales and returns.

CREATE TABLE retailers (
    id         text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE terminals (
    id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    retailer_id   text NOT NULL REFERENCES retailers (id),
    name          text NOT NULL,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    online_mode   boolean NOT NULL DEFAULT false,  -- each sale authorised by the center before printing
    report_seq    bigint NOT NULL DEFAULT 0 CHECK (report_seq >= 0),  -- last sales report sequence taken
    last_seen_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX terminals_retailer ON terminals (retailer_id);

CREATE TABLE vendors (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    retailer_id text NOT NULL REFERENCES retailers (id),
    name        text NOT NULL,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vendors_retailer ON vendors (retailer_id);

-- Per terminal and product: the levels the center keeps the terminal between.
CREATE TABLE terminal_products (
    terminal_id    text NOT NULL REFERENCES terminals (id),
    operator_id    text NOT NULL,
    product        text NOT NULL,
    min_level      integer NOT NULL CHECK (min_level >= 0),
    max_level      integer NOT NULL CHECK (max_level > 0),
    auto_reorder   boolean NOT NULL DEFAULT true,
    reported_stock integer CHECK (reported_stock >= 0),  -- as the terminal last reported it
    reported_at    timestamptz,
    PRIMARY KEY (terminal_id, operator_id, product),
    FOREIGN KEY (operator_id, product) REFERENCES products (operator_id, code),
    CHECK (max_level >= min_level)
);

CREATE TABLE shipments (
    id           text PRIMARY KEY,
    terminal_id  text NOT NULL REFERENCES terminals (id),
    operator_id  text NOT NULL,
    product      text NOT NULL,
    count        integer NOT NULL CHECK (count > 0),
    state        text NOT NULL DEFAULT 'sent' CHECK (state IN ('sent', 'confirmed', 'completed')),
    kek_label    text NOT NULL REFERENCES center_keys (label),
    key_wrapped  bytea NOT NULL CHECK (length(key_wrapped) = 60),     -- the shipment key under the KEK
    share_wrapped bytea NOT NULL CHECK (length(share_wrapped) = 60),  -- the terminal's share under the KEK
    message_id   uuid NOT NULL UNIQUE,
    document     bytea NOT NULL,     -- the signed Shipment, byte-exact
    created_at   timestamptz NOT NULL,
    confirmed_at timestamptz,
    completed_at timestamptz,
    FOREIGN KEY (operator_id, product) REFERENCES products (operator_id, code),
    CHECK ((state = 'sent') = (confirmed_at IS NULL)),
    CHECK ((state = 'completed') = (completed_at IS NOT NULL))
);
CREATE INDEX shipments_terminal ON shipments (terminal_id, state);

-- Where each code is: a code outside the vault belongs to exactly one shipment, a code in the
-- vault to none.
ALTER TABLE codes
    ADD COLUMN shipment_id text REFERENCES shipments (id),
    ADD COLUMN sold_at timestamptz,
    ADD CONSTRAINT codes_place CHECK (
        (state IN ('in_vault', 'returned') AND shipment_id IS NULL)
        OR (state IN ('allocated', 'shipped', 'delivered', 'sold', 'quarantined') AND shipment_id IS NOT NULL)
        OR state IN ('expired', 'void')),
    ADD CONSTRAINT codes_sold CHECK ((state = 'sold') = (sold_at IS NOT NULL));
CREATE INDEX codes_shipment ON codes (shipment_id) WHERE shipment_id IS NOT NULL;

CREATE TABLE sales (
    code_id     bigint PRIMARY KEY REFERENCES codes (id),  -- a code is sold once
    terminal_id text NOT NULL REFERENCES terminals (id),
    vendor_id   text NOT NULL,
    ticket      text NOT NULL,
    sold_at     timestamptz NOT NULL,
    reprints    integer NOT NULL DEFAULT 0 CHECK (reprints >= 0),
    report_seq  bigint,                 -- the report that brought it; null when authorised online
    UNIQUE (terminal_id, ticket)
);
CREATE INDEX sales_terminal_time ON sales (terminal_id, sold_at);
