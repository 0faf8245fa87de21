package pos

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/mattn/go-sqlite3" // the SQLite driver, registered as "sqlite3"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/message"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is the terminal's local database (SQLite, WAL, synchronous=FULL): the signed
// shipments byte-exact, their codes still sealed, key-share updates, sales, the outgoing queue
// with its gap-free report sequence, shifts and card events. Every method is one transaction;
// a method that returns nil has reached the disk.
type Store struct {
	db       *sql.DB
	terminal string
	now      func() time.Time
}

// StoreConfig is what OpenStore needs.
type StoreConfig struct {
	Path     string           // the SQLite file
	Terminal string           // the terminal's id, which prefixes ticket numbers
	Now      func() time.Time // default time.Now
}

// OpenStore opens (creating and migrating when needed) the store at cfg.Path. It returns an
// invalid error for an incomplete config and the database's error otherwise.
func OpenStore(cfg StoreConfig) (*Store, error) {
	if cfg.Path == "" || cfg.Terminal == "" {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "bad_config", "pos: the store needs a path and the terminal id")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", "5000")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite3", "file:"+cfg.Path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	// Few connections: in WAL mode readers (a card loading a shipment during a sale) never
	// wait for the writer, and writers (BEGIN IMMEDIATE) queue on the busy timeout.
	db.SetMaxOpenConns(4)
	s := &Store{db: db, terminal: cfg.Terminal, now: cfg.Now}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("pos: store %s: %w", cfg.Path, err)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		db.Close()
		return nil, fmt.Errorf("pos: store %s is not in WAL mode (%q, %v)", cfg.Path, mode, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// migrate applies the numbered migrations not applied yet, each in its own transaction.
func (s *Store) migrate() error {
	if _, err := s.db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return err
	}
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: no number", name)
		}
		body, _ := migrationFiles.ReadFile(name)
		err = s.tx(func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRow(`SELECT count(*) FROM schema_migrations WHERE version = ?`, v).Scan(&n); err != nil || n > 0 {
				return err
			}
			if _, err := tx.Exec(string(body)); err != nil {
				return fmt.Errorf("migration %s: %w", base, err)
			}
			_, err := tx.Exec(`INSERT INTO schema_migrations (version) VALUES (?)`, v)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// tx runs fn in one transaction (BEGIN IMMEDIATE) and commits it.
func (s *Store) tx(fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(context.Background(), nil)
	if err != nil {
		return diskError(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return diskError(err)
	}
	return diskError(tx.Commit())
}

// reasonDiskFull is the reason of an error from a store whose disk is full.
const reasonDiskFull = "disk_full"

// isDiskFull tells whether err is SQLite's SQLITE_FULL: the disk (or the database's cap) has
// no room for a new page. The transaction that met it was rolled back whole.
func isDiskFull(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrFull
	}
	return err != nil && strings.Contains(err.Error(), "database or disk is full")
}

// diskError says what to do when the disk is full, the one storage failure a clerk can fix.
func diskError(err error) error {
	if isDiskFull(err) {
		return evoucher.Errorf(evoucher.KindUnavailable, reasonDiskFull,
			"the terminal's disk is full: nothing was recorded; free space on it (old logs, PDF tickets) and try again (%w)", err)
	}
	return err
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTS(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// TicketName is the printed ticket number of local ticket n of terminal.
func TicketName(terminal string, n int64) string { return fmt.Sprintf("%s-%06d", terminal, n) }

// ParseTicket reads a ticket number as printed ("T-1-000012") or bare ("12").
func (s *Store) ParseTicket(t string) (int64, error) {
	t = strings.TrimPrefix(strings.TrimSpace(t), s.terminal+"-")
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, evoucher.Errorf(evoucher.KindInvalid, "bad_ticket", "%q is not a ticket number of %s (like %s)", t, s.terminal, TicketName(s.terminal, 12))
	}
	return n, nil
}

// ---- shipments ----

// ErrReplayed is the reason of a shipment or key-share update already stored.
const reasonReplayed = "replayed"

// AddShipment stores a verified shipment, byte-exact, and its sealed codes on the shelf. It
// returns a conflict error with reason "replayed" when the shipment, its message or one of
// its serials is here already.
func (s *Store) AddShipment(sh message.Shipment, raw []byte) error {
	return s.tx(func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRow(`SELECT count(*) FROM shipments WHERE id = ? OR message_id = ?`, sh.ShipmentID, sh.MessageID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return evoucher.Errorf(evoucher.KindConflict, reasonReplayed, "shipment %s (message %s) was received already: refused as a replay", sh.ShipmentID, sh.MessageID)
		}
		shift, err := openShift(tx, s.now())
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO shipments (id, message_id, retailer, retailer_name, operator, product, face_value, currency, refill, document, received_at, shift_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, sh.ShipmentID, sh.MessageID, sh.Retailer, sh.RetailerName, sh.Product.Operator, sh.Product.Code,
			sh.Product.FaceValue, sh.Product.Currency, sh.RefillTemplate, raw, ts(s.now()), shift); err != nil {
			return err
		}
		ins, err := tx.Prepare(`INSERT INTO codes (serial, shipment_id, position, operator, product, expiry, sealed) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		if err := addVendors(tx, sh.ShipmentID, sh.VendorShares); err != nil {
			return err
		}
		for i, c := range sh.Codes {
			if _, err := ins.Exec(c.Serial, sh.ShipmentID, i, sh.Product.Operator, sh.Product.Code, c.Expiry.Format(time.DateOnly), c.Sealed); err != nil {
				if strings.Contains(err.Error(), "UNIQUE") {
					return evoucher.Errorf(evoucher.KindConflict, reasonReplayed, "serial %s of shipment %s is here already: the shipment is refused", c.Serial, sh.ShipmentID)
				}
				return err
			}
		}
		return nil
	})
}

// MarkAcked records that the center confirmed a shipment's acknowledgement.
func (s *Store) MarkAcked(shipmentID string) error {
	return s.tx(func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE shipments SET acked_at = ? WHERE id = ?`, ts(s.now()), shipmentID)
		return err
	})
}

// Unacked lists shipments stored but not acknowledged, oldest first.
func (s *Store) Unacked() ([]string, error) {
	return s.strings(`SELECT id FROM shipments WHERE acked_at IS NULL ORDER BY received_at, id`)
}

func (s *Store) strings(q string, args ...any) ([]string, error) {
	rows, err := s.db.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ShipmentDocuments returns a stored shipment, byte-exact, and its key-share updates in the
// order they came. It returns a not-found error for an unknown shipment.
func (s *Store) ShipmentDocuments(id string) (doc []byte, updates [][]byte, err error) {
	if err := s.db.QueryRow(`SELECT document FROM shipments WHERE id = ?`, id).Scan(&doc); errors.Is(err, sql.ErrNoRows) {
		return nil, nil, evoucher.Errorf(evoucher.KindNotFound, "unknown_shipment", "no shipment %s here", id)
	} else if err != nil {
		return nil, nil, err
	}
	rows, err := s.db.Query(`SELECT document FROM share_updates WHERE shipment_id = ? ORDER BY id`, id)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var u []byte
		if err := rows.Scan(&u); err != nil {
			return nil, nil, err
		}
		updates = append(updates, u)
	}
	return doc, updates, rows.Err()
}

// AddShareUpdate stores a verified key-share update for a stored shipment. It returns a
// conflict error with reason "replayed" when the message is here already, and a not-found
// error when the shipment is not.
func (s *Store) AddShareUpdate(shipmentID, messageID string, vendors []string, raw []byte) error {
	return s.tx(func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRow(`SELECT count(*) FROM shipments WHERE id = ?`, shipmentID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return evoucher.Errorf(evoucher.KindNotFound, "unknown_shipment", "key shares for shipment %s, which is not here", shipmentID)
		}
		_, err := tx.Exec(`INSERT INTO share_updates (shipment_id, message_id, document, received_at) VALUES (?, ?, ?, ?)`, shipmentID, messageID, raw, ts(s.now()))
		if err != nil && strings.Contains(err.Error(), "UNIQUE") {
			return evoucher.Errorf(evoucher.KindConflict, reasonReplayed, "key-share update %s was received already", messageID)
		}
		if err != nil {
			return err
		}
		m := map[string]*etree.Element{}
		for _, v := range vendors {
			m[v] = nil
		}
		return addVendors(tx, shipmentID, m)
	})
}

func addVendors(tx *sql.Tx, shipmentID string, vendors map[string]*etree.Element) error {
	for v := range vendors {
		if _, err := tx.Exec(`INSERT OR IGNORE INTO vendor_shares (shipment_id, vendor) VALUES (?, ?)`, shipmentID, v); err != nil {
			return err
		}
	}
	return nil
}

// HasVendor tells whether any stored shipment carries a share for vendor card v: the center
// makes shares only for the active cards of the terminal's retailer.
func (s *Store) HasVendor(v string) (bool, error) {
	var n int
	err := s.db.QueryRow(`SELECT count(*) FROM vendor_shares WHERE vendor = ?`, v).Scan(&n)
	return n > 0, err
}

// Retailer returns the retailer the stored shipments are for ("" before the first one).
func (s *Store) Retailer() (string, error) {
	var r sql.NullString
	err := s.db.QueryRow(`SELECT retailer FROM shipments ORDER BY received_at DESC LIMIT 1`).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return r.String, err
}

// ---- stock ----

// StockLine is the count of one product on the shelf.
type StockLine struct {
	Operator, Product string
	FaceValue         int64
	Currency          string
	OnShelf           int
}

// Stock returns the codes on the shelf per product, products with none included.
func (s *Store) Stock() ([]StockLine, error) {
	return stockOf(s.db)
}

type querier interface {
	Query(string, ...any) (*sql.Rows, error)
	QueryRow(string, ...any) *sql.Row
}

func stockOf(q querier) ([]StockLine, error) {
	rows, err := q.Query(`SELECT sh.operator, sh.product, max(sh.face_value), max(sh.currency),
		(SELECT count(*) FROM codes c WHERE c.operator = sh.operator AND c.product = sh.product AND c.state = 'on_shelf')
		FROM shipments sh GROUP BY sh.operator, sh.product ORDER BY sh.operator, sh.product`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StockLine
	for rows.Next() {
		var l StockLine
		if err := rows.Scan(&l.Operator, &l.Product, &l.FaceValue, &l.Currency, &l.OnShelf); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// ---- sales ----

// ShelfCode is a code on the shelf, still sealed, with what its ticket needs.
type ShelfCode struct {
	Serial, ShipmentID string
	Operator, Product  string
	FaceValue          int64
	Currency, Refill   string
	Retailer           string
	RetailerName       string // as the code's shipment carried it; "" from an older center
	Expiry             time.Time
	Sealed             []byte
}

// Sale is one sale as the terminal keeps it.
type Sale struct {
	ShelfCode
	TicketNo   int64
	Ticket     string
	Vendor     string
	SoldAt     time.Time
	Printed    bool
	Reprints   int
	Authorized bool
}

// ErrNoStock is the reason of a sale with nothing left of the product.
const reasonNoStock = "out_of_stock"

// Sell takes the next code of product off the shelf (earliest expiry first) and records its
// sale by vendor, durably, before it returns: open is called inside the transaction with the
// sealed code and must decrypt it; when open fails nothing is recorded. It returns a
// not-found error with reason "out_of_stock" when the shelf holds none of product, open's
// error, and a disk_full error when the disk is full.
func (s *Store) Sell(product, vendor string, open func(ShelfCode) error) (Sale, error) {
	var sale Sale
	err := s.tx(func(tx *sql.Tx) error {
		c, err := nextCode(tx, product)
		if err != nil {
			return err
		}
		if err := open(c); err != nil {
			return err
		}
		shift, err := openShift(tx, s.now())
		if err != nil {
			return err
		}
		now := s.now().UTC()
		res, err := tx.Exec(`INSERT INTO sales (serial, vendor, sold_at, shift_id) VALUES (?, ?, ?, ?)`, c.Serial, vendor, ts(now), shift)
		if err != nil {
			return err
		}
		// The WHERE makes a code sold twice impossible even if two terminals programs shared
		// this file; the UNIQUE serial in sales says the same.
		up, err := tx.Exec(`UPDATE codes SET state = 'sold' WHERE serial = ? AND state = 'on_shelf'`, c.Serial)
		if err != nil {
			return err
		}
		if n, _ := up.RowsAffected(); n != 1 {
			return fmt.Errorf("pos: code %s left the shelf during its sale", c.Serial)
		}
		no, _ := res.LastInsertId()
		sale = Sale{ShelfCode: c, TicketNo: no, Ticket: TicketName(s.terminal, no), Vendor: vendor, SoldAt: now}
		return nil
	})
	if evoucher.ReasonOf(err) == reasonDiskFull {
		// Rolled back whole: no sale row, the code still on_shelf, no ticket number taken.
		var cause sqlite3.Error
		if errors.As(err, &cause) {
			err = cause
		}
		return Sale{}, evoucher.Errorf(evoucher.KindUnavailable, reasonDiskFull,
			"the terminal's disk is full: this sale of %s was not recorded and nothing was printed; its code stays on the shelf and the customer must not pay. "+
				"Free space on the terminal (old logs, PDF tickets), then sell again; run `evpos resume` first if a ticket waits to be printed (%w)", product, err)
	}
	return sale, err
}

const shelfColumns = `c.serial, c.shipment_id, c.operator, c.product, sh.face_value, sh.currency, sh.refill, sh.retailer, sh.retailer_name, c.expiry, c.sealed`

func scanShelf(row interface{ Scan(...any) error }, extra ...any) (ShelfCode, error) {
	var c ShelfCode
	var exp string
	err := row.Scan(append([]any{&c.Serial, &c.ShipmentID, &c.Operator, &c.Product, &c.FaceValue, &c.Currency, &c.Refill, &c.Retailer, &c.RetailerName, &exp, &c.Sealed}, extra...)...)
	c.Expiry, _ = time.Parse(time.DateOnly, exp)
	return c, err
}

func nextCode(tx *sql.Tx, product string) (ShelfCode, error) {
	c, err := scanShelf(tx.QueryRow(`SELECT `+shelfColumns+` FROM codes c JOIN shipments sh ON sh.id = c.shipment_id
		WHERE c.product = ? AND c.state = 'on_shelf' ORDER BY c.expiry, c.shipment_id, c.position LIMIT 1`, product))
	if errors.Is(err, sql.ErrNoRows) {
		return c, evoucher.Errorf(evoucher.KindNotFound, reasonNoStock, "no %s left on this terminal: sync to receive stock, or order more", product)
	}
	return c, err
}

const saleColumns = shelfColumns + `, s.ticket_no, s.vendor, s.sold_at, s.printed, s.reprints, s.authorized`

func (s *Store) scanSale(row interface{ Scan(...any) error }) (Sale, error) {
	var sale Sale
	var soldAt string
	c, err := scanShelf(row, &sale.TicketNo, &sale.Vendor, &soldAt, &sale.Printed, &sale.Reprints, &sale.Authorized)
	sale.ShelfCode = c
	sale.SoldAt = parseTS(soldAt)
	sale.Ticket = TicketName(s.terminal, sale.TicketNo)
	return sale, err
}

const saleFrom = ` FROM sales s JOIN codes c ON c.serial = s.serial JOIN shipments sh ON sh.id = c.shipment_id`

// SaleOf returns the sale of local ticket n, or a not-found error.
func (s *Store) SaleOf(n int64) (Sale, error) {
	sale, err := s.scanSale(s.db.QueryRow(`SELECT `+saleColumns+saleFrom+` WHERE s.ticket_no = ?`, n))
	if errors.Is(err, sql.ErrNoRows) {
		return sale, evoucher.Errorf(evoucher.KindNotFound, "unknown_ticket", "no ticket %s on this terminal", TicketName(s.terminal, n))
	}
	return sale, err
}

// Unprinted lists the sales committed whose ticket never finished printing, oldest first: a
// crash, a dead printer or an online sale waiting for the center.
func (s *Store) Unprinted() ([]Sale, error) {
	rows, err := s.db.Query(`SELECT ` + saleColumns + saleFrom + ` WHERE s.printed = 0 ORDER BY s.ticket_no`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Sale
	for rows.Next() {
		sale, err := s.scanSale(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sale)
	}
	return out, rows.Err()
}

// RecentSales lists the last n sales, newest first.
func (s *Store) RecentSales(n int) ([]Sale, error) {
	rows, err := s.db.Query(`SELECT `+saleColumns+saleFrom+` ORDER BY s.ticket_no DESC LIMIT ?`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Sale
	for rows.Next() {
		sale, err := s.scanSale(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sale)
	}
	return out, rows.Err()
}

// MarkPrinted records that ticket n printed whole. A DUPLICATE (a reprint, or the print of
// a ticket whose first print may have started before a crash or a printer failure) counts as
// one more reprint, reported in the next sales report.
func (s *Store) MarkPrinted(n int64, duplicate bool) error {
	return s.tx(func(tx *sql.Tx) error {
		q := `UPDATE sales SET printed = 1 WHERE ticket_no = ?`
		if duplicate {
			q = `UPDATE sales SET reprints = reprints + 1, printed = 1 WHERE ticket_no = ?`
		}
		_, err := tx.Exec(q, n)
		return err
	})
}

// MarkAuthorized records that the center authorised the sale of ticket n (online mode).
func (s *Store) MarkAuthorized(n int64) error {
	return s.tx(func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE sales SET authorized = 1 WHERE ticket_no = ?`, n)
		return err
	})
}

// RefuseSale undoes an online sale the center refused (the code was sold elsewhere, or is
// not this terminal's): the ticket was never printed, the code is void here and is never
// offered again, and the refusal is kept.
func (s *Store) RefuseSale(n int64, reason string) error {
	return s.tx(func(tx *sql.Tx) error {
		var serial, vendor string
		var shift int64
		var printed bool
		if err := tx.QueryRow(`SELECT serial, vendor, shift_id, printed FROM sales WHERE ticket_no = ?`, n).Scan(&serial, &vendor, &shift, &printed); err != nil {
			return err
		}
		if printed {
			return fmt.Errorf("pos: ticket %s was printed; it cannot be refused any more", TicketName(s.terminal, n))
		}
		if _, err := tx.Exec(`INSERT INTO refused_sales (ticket_no, serial, vendor, at, reason, shift_id) VALUES (?, ?, ?, ?, ?, ?)`,
			n, serial, vendor, ts(s.now()), reason, shift); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM sales WHERE ticket_no = ?`, n); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE codes SET state = 'void' WHERE serial = ?`, serial)
		return err
	})
}

// ---- the outgoing queue ----

// Outgoing is one signed document waiting for the center.
type Outgoing struct {
	ID       int64
	Kind     string // "report" or "return"
	Seq      int64  // reports only
	Document []byte
}

// ReportBuilder signs the SalesReport number seq.
type ReportBuilder func(seq int64, sales []message.Sale, stock []message.StockLevel) ([]byte, error)

// QueueReport puts the sales not yet reported, and reprints not yet reported, in a signed
// SalesReport with the next sequence number, in the outgoing queue, in one transaction: the
// sequence has no gap and no sale is in two reports unless its reprints changed. With
// nothing to report and stockOnly false it queues nothing and returns seq 0.
func (s *Store) QueueReport(build ReportBuilder, stockOnly bool) (seq int64, sales int, err error) {
	err = s.tx(func(tx *sql.Tx) error {
		rows, err := tx.Query(`SELECT s.ticket_no, s.serial, s.vendor, s.sold_at, s.reprints FROM sales s
			WHERE s.reported_seq IS NULL OR s.reprints > s.reported_reprints ORDER BY s.ticket_no`)
		if err != nil {
			return err
		}
		var list []message.Sale
		for rows.Next() {
			var no int64
			var sale message.Sale
			var at string
			if err := rows.Scan(&no, &sale.Serial, &sale.Vendor, &at, &sale.Reprints); err != nil {
				rows.Close()
				return err
			}
			sale.Ticket, sale.Time = TicketName(s.terminal, no), parseTS(at)
			list = append(list, sale)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(list) == 0 && !stockOnly {
			return nil
		}
		if err := tx.QueryRow(`SELECT coalesce(max(seq), 0) + 1 FROM outbox WHERE kind = 'report'`).Scan(&seq); err != nil {
			return err
		}
		stock, err := stockOf(tx)
		if err != nil {
			return err
		}
		levels := make([]message.StockLevel, len(stock))
		for i, l := range stock {
			levels[i] = message.StockLevel{Operator: l.Operator, Product: l.Product, Count: l.OnShelf}
		}
		doc, err := build(seq, list, levels)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO outbox (kind, seq, document, created_at) VALUES ('report', ?, ?, ?)`, seq, doc, ts(s.now())); err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE sales SET reported_seq = coalesce(reported_seq, ?), reported_reprints = reprints
			WHERE reported_seq IS NULL OR reprints > reported_reprints`, seq)
		sales = len(list)
		return err
	})
	return seq, sales, err
}

// ReturnBuilder signs a StockReturn of codes of one shipment.
type ReturnBuilder func(shipmentID string, codes []ShelfCode) ([]byte, error)

// QueueReturn takes up to n codes of product off the shelf (latest expiry first; n ≤ 0: all)
// and queues their signed StockReturns, one per shipment, in one transaction. It returns the
// serials handed back.
func (s *Store) QueueReturn(product string, n int, build ReturnBuilder) ([]string, error) {
	var serials []string
	err := s.tx(func(tx *sql.Tx) error {
		q := `SELECT ` + shelfColumns + ` FROM codes c JOIN shipments sh ON sh.id = c.shipment_id
			WHERE c.state = 'on_shelf' AND (? = '' OR c.product = ?) ORDER BY c.shipment_id, c.expiry DESC, c.position DESC`
		rows, err := tx.Query(q, product, product)
		if err != nil {
			return err
		}
		byShipment := map[string][]ShelfCode{}
		var order []string
		count := 0
		for rows.Next() && (n <= 0 || count < n) {
			c, err := scanShelf(rows)
			if err != nil {
				rows.Close()
				return err
			}
			if byShipment[c.ShipmentID] == nil {
				order = append(order, c.ShipmentID)
			}
			byShipment[c.ShipmentID] = append(byShipment[c.ShipmentID], c)
			count++
		}
		rows.Close()
		if count == 0 {
			return evoucher.Errorf(evoucher.KindNotFound, reasonNoStock, "nothing on the shelf to return")
		}
		shift, err := openShift(tx, s.now())
		if err != nil {
			return err
		}
		for _, id := range order {
			doc, err := build(id, byShipment[id])
			if err != nil {
				return err
			}
			if _, err := tx.Exec(`INSERT INTO outbox (kind, document, created_at) VALUES ('return', ?, ?)`, doc, ts(s.now())); err != nil {
				return err
			}
			for _, c := range byShipment[id] {
				if _, err := tx.Exec(`UPDATE codes SET state = 'returned', returned_at = ?, return_shift = ? WHERE serial = ? AND state = 'on_shelf'`,
					ts(s.now()), shift, c.Serial); err != nil {
					return err
				}
				serials = append(serials, c.Serial)
			}
		}
		return nil
	})
	return serials, err
}

// Outbox lists the documents waiting for the center, in the order they must go.
func (s *Store) Outbox() ([]Outgoing, error) {
	rows, err := s.db.Query(`SELECT id, kind, coalesce(seq, 0), document FROM outbox WHERE sent_at IS NULL ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Outgoing
	for rows.Next() {
		var o Outgoing
		if err := rows.Scan(&o.ID, &o.Kind, &o.Seq, &o.Document); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// MarkSent records the center's answer to an outgoing document.
func (s *Store) MarkSent(id int64, detail string) error {
	return s.tx(func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE outbox SET sent_at = ?, detail = ? WHERE id = ?`, ts(s.now()), detail, id)
		return err
	})
}

// ---- settings, CRL, card events ----

// Put stores a small named value.
func (s *Store) Put(key string, v []byte) error {
	return s.tx(func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, v)
		return err
	})
}

// Get returns a named value, nil when unset.
func (s *Store) Get(key string) ([]byte, error) {
	var v []byte
	err := s.db.QueryRow(`SELECT value FROM kv WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return v, err
}

// CardEvent records what happened with a vendor card: "wrong_pin", "pin_locked", "refused",
// "activated" or "removed".
func (s *Store) CardEvent(card, kind, detail string) error {
	return s.tx(func(tx *sql.Tx) error {
		shift, err := openShift(tx, s.now())
		if err != nil {
			return err
		}
		_, err = tx.Exec(`INSERT INTO card_events (at, card, kind, detail, shift_id) VALUES (?, ?, ?, ?, ?)`, ts(s.now()), card, kind, detail, shift)
		return err
	})
}

// CardEvents counts the current shift's card events of each kind.
func (s *Store) CardEvents() (map[string]int, error) {
	rows, err := s.db.Query(`SELECT kind, count(*) FROM card_events WHERE shift_id = (SELECT id FROM shifts WHERE closed_at IS NULL) GROUP BY kind`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, rows.Err()
}

// ---- shifts ----

// openShift returns the open shift, opening one with the current stock when there is none.
func openShift(tx *sql.Tx, now time.Time) (int64, error) {
	var id int64
	err := tx.QueryRow(`SELECT id FROM shifts WHERE closed_at IS NULL`).Scan(&id)
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return id, err
	}
	stock, err := stockOf(tx)
	if err != nil {
		return 0, err
	}
	opening := map[string]int{}
	for _, l := range stock {
		opening[l.Operator+"/"+l.Product] = l.OnShelf
	}
	b, _ := json.Marshal(opening)
	res, err := tx.Exec(`INSERT INTO shifts (opened_at, opening) VALUES (?, ?)`, ts(now), string(b))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// ShiftLine is one product's movement over a shift.
type ShiftLine struct {
	Operator, Product                                  string
	Opening, Received, Sold, Returned, Voided, Closing int
}

// Reconciled tells whether the line adds up: opening + received − sold − returned − voided
// = closing.
func (l ShiftLine) Reconciled() bool {
	return l.Opening+l.Received-l.Sold-l.Returned-l.Voided == l.Closing
}

// Shift is a shift's summary.
type Shift struct {
	ID                  int64
	Opened, Closed      time.Time
	Lines               []ShiftLine
	Reprints, Unprinted int
	CardEvents          map[string]int
}

// Reconciled tells whether every line adds up.
func (sh Shift) Reconciled() bool {
	for _, l := range sh.Lines {
		if !l.Reconciled() {
			return false
		}
	}
	return true
}

// CurrentShift summarises the open shift (opening one if none is open).
func (s *Store) CurrentShift() (Shift, error) {
	var sh Shift
	err := s.tx(func(tx *sql.Tx) error {
		var err error
		sh, err = summarise(tx, s.now())
		return err
	})
	return sh, err
}

func summarise(tx *sql.Tx, now time.Time) (Shift, error) {
	id, err := openShift(tx, now)
	if err != nil {
		return Shift{}, err
	}
	sh := Shift{ID: id, CardEvents: map[string]int{}}
	var opened, openingJSON string
	if err := tx.QueryRow(`SELECT opened_at, opening FROM shifts WHERE id = ?`, id).Scan(&opened, &openingJSON); err != nil {
		return sh, err
	}
	sh.Opened = parseTS(opened)
	opening := map[string]int{}
	_ = json.Unmarshal([]byte(openingJSON), &opening)
	stock, err := stockOf(tx)
	if err != nil {
		return sh, err
	}
	lines := map[string]*ShiftLine{}
	for k, n := range opening {
		op, p, _ := strings.Cut(k, "/")
		lines[k] = &ShiftLine{Operator: op, Product: p, Opening: n}
	}
	line := func(op, p string) *ShiftLine {
		k := op + "/" + p
		if lines[k] == nil {
			lines[k] = &ShiftLine{Operator: op, Product: p}
		}
		return lines[k]
	}
	for _, l := range stock {
		line(l.Operator, l.Product).Closing = l.OnShelf
	}
	count := func(q string, set func(*ShiftLine, int)) error {
		rows, err := tx.Query(q, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var op, p string
			var n int
			if err := rows.Scan(&op, &p, &n); err != nil {
				return err
			}
			set(line(op, p), n)
		}
		return rows.Err()
	}
	for _, c := range []struct {
		q   string
		set func(*ShiftLine, int)
	}{
		{`SELECT c.operator, c.product, count(*) FROM codes c JOIN shipments sh ON sh.id = c.shipment_id WHERE sh.shift_id = ? GROUP BY 1, 2`, func(l *ShiftLine, n int) { l.Received = n }},
		{`SELECT c.operator, c.product, count(*) FROM sales s JOIN codes c ON c.serial = s.serial WHERE s.shift_id = ? GROUP BY 1, 2`, func(l *ShiftLine, n int) { l.Sold = n }},
		{`SELECT c.operator, c.product, count(*) FROM codes c WHERE c.return_shift = ? GROUP BY 1, 2`, func(l *ShiftLine, n int) { l.Returned = n }},
		{`SELECT c.operator, c.product, count(*) FROM refused_sales r JOIN codes c ON c.serial = r.serial WHERE r.shift_id = ? GROUP BY 1, 2`, func(l *ShiftLine, n int) { l.Voided = n }},
	} {
		if err := count(c.q, c.set); err != nil {
			return sh, err
		}
	}
	keys := make([]string, 0, len(lines))
	for k := range lines {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sh.Lines = append(sh.Lines, *lines[k])
	}
	if err := tx.QueryRow(`SELECT coalesce(sum(reprints), 0), coalesce(sum(1 - printed), 0) FROM sales WHERE shift_id = ?`, id).Scan(&sh.Reprints, &sh.Unprinted); err != nil {
		return sh, err
	}
	rows, err := tx.Query(`SELECT kind, count(*) FROM card_events WHERE shift_id = ? GROUP BY kind`, id)
	if err != nil {
		return sh, err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return sh, err
		}
		sh.CardEvents[k] = n
	}
	return sh, rows.Err()
}

// CloseShift summarises the open shift, has sign make its signed record, and closes it, in
// one transaction; the next operation opens a new shift whose opening stock is this one's
// closing stock.
func (s *Store) CloseShift(sign func(Shift) ([]byte, error)) (Shift, []byte, error) {
	var sh Shift
	var record []byte
	err := s.tx(func(tx *sql.Tx) error {
		var err error
		if sh, err = summarise(tx, s.now()); err != nil {
			return err
		}
		sh.Closed = s.now().UTC()
		if record, err = sign(sh); err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE shifts SET closed_at = ?, record = ? WHERE id = ?`, ts(sh.Closed), record, sh.ID)
		return err
	})
	return sh, record, err
}
