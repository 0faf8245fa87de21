-- The terminal's local store (SQLite). Codes stay sealed under their shipment key; the
-- shipment document is kept byte-exact, as signed by the center.
CREATE TABLE shipments (
    id          TEXT PRIMARY KEY,
    message_id  TEXT NOT NULL UNIQUE,
    retailer    TEXT NOT NULL,
    operator    TEXT NOT NULL,
    product     TEXT NOT NULL,
    face_value  INTEGER NOT NULL CHECK (face_value > 0),
    currency    TEXT NOT NULL,
    refill      TEXT NOT NULL,
    document    BLOB NOT NULL,
    received_at TEXT NOT NULL,
    shift_id    INTEGER NOT NULL REFERENCES shifts (id),
    acked_at    TEXT
);

CREATE TABLE codes (
    serial      TEXT PRIMARY KEY,
    shipment_id TEXT NOT NULL REFERENCES shipments (id),
    position    INTEGER NOT NULL,
    operator    TEXT NOT NULL,
    product     TEXT NOT NULL,
    expiry      TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    state       TEXT NOT NULL DEFAULT 'on_shelf' CHECK (state IN ('on_shelf', 'sold', 'returned', 'void')),
    returned_at TEXT,
    return_shift INTEGER REFERENCES shifts (id),
    UNIQUE (shipment_id, position)
);
CREATE INDEX codes_shelf ON codes (product, state, expiry, shipment_id, position);

-- Which vendor cards hold a share of each shipment: the cards of this terminal's retailer.
CREATE TABLE vendor_shares (
    shipment_id TEXT NOT NULL REFERENCES shipments (id),
    vendor      TEXT NOT NULL,
    PRIMARY KEY (shipment_id, vendor)
);

CREATE TABLE share_updates (
    id          INTEGER PRIMARY KEY,
    shipment_id TEXT NOT NULL REFERENCES shipments (id),
    message_id  TEXT NOT NULL UNIQUE,
    document    BLOB NOT NULL,
    received_at TEXT NOT NULL
);

CREATE TABLE shifts (
    id            INTEGER PRIMARY KEY,
    opened_at     TEXT NOT NULL,
    closed_at     TEXT,
    opening       TEXT NOT NULL, -- JSON: stock per operator/product when the shift opened
    record        BLOB -- the signed shift record, once closed
);
-- At most one open shift.
CREATE UNIQUE INDEX shifts_one_open ON shifts ((closed_at IS NULL)) WHERE closed_at IS NULL;

-- A sale is committed before its ticket is printed; printed says whether a print finished.
-- reported_reprints is what the last report sent said, so a reprint is reported once more.
-- Ticket numbers are never reused (AUTOINCREMENT), even after a sale the center refused.
CREATE TABLE sales (
    ticket_no   INTEGER PRIMARY KEY AUTOINCREMENT,
    serial      TEXT NOT NULL UNIQUE REFERENCES codes (serial),
    vendor      TEXT NOT NULL,
    sold_at     TEXT NOT NULL,
    shift_id    INTEGER NOT NULL REFERENCES shifts (id),
    printed     INTEGER NOT NULL DEFAULT 0 CHECK (printed IN (0, 1)),
    reprints    INTEGER NOT NULL DEFAULT 0 CHECK (reprints >= 0),
    authorized  INTEGER NOT NULL DEFAULT 0 CHECK (authorized IN (0, 1)),
    reported_seq INTEGER,
    reported_reprints INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sales_unreported ON sales (reported_seq) WHERE reported_seq IS NULL;

-- The outgoing queue: signed documents waiting for the center. Reports carry a gap-free
-- sequence, given in the transaction that queues them.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('report', 'return')),
    seq        INTEGER UNIQUE,
    document   BLOB NOT NULL,
    created_at TEXT NOT NULL,
    sent_at    TEXT,
    detail     TEXT,
    CHECK ((kind = 'report') = (seq IS NOT NULL))
);

-- Sales the center refused in online mode: the code is void here, the ticket never printed.
CREATE TABLE refused_sales (
    ticket_no INTEGER PRIMARY KEY,
    serial    TEXT NOT NULL REFERENCES codes (serial),
    vendor    TEXT NOT NULL,
    at        TEXT NOT NULL,
    reason    TEXT NOT NULL,
    shift_id  INTEGER NOT NULL REFERENCES shifts (id)
);

-- Card events: wrong PINs, locked cards, refused cards; counted per shift.
CREATE TABLE card_events (
    id       INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    card     TEXT NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('wrong_pin', 'pin_locked', 'refused', 'activated', 'removed')),
    detail   TEXT NOT NULL DEFAULT '',
    shift_id INTEGER REFERENCES shifts (id)
);

-- Settings and small state: the latest CRL, the center's encryption certificate, last sync.
CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
