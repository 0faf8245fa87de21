package pos

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/message"
	"github.com/evoucher/evoucher/xml/xenc"
)

// Names of the small values the store keeps.
const (
	keyCRL           = "crl"            // DER of the latest CRL received
	keyCRLAt         = "crl_fetched_at" // when
	keyCenterEncrypt = "center_encrypt" // DER of the center's encryption certificate
	keyLastSync      = "last_sync"      // RFC 3339 time of the last complete sync
	keyAlarms        = "alarms"         // JSON list of alarm lines for the clerk
	keyOnlineMode    = "online_mode"    // "online" or "offline", as the center set it
)

// Authorizer records a sale at the center before it is printed (online mode).
type Authorizer interface {
	Authorize(ctx context.Context, s message.Sale) error
}

// Till sells: it takes a code off the shelf, opens it with the activated card, records the
// sale durably, has the center authorise it in online mode, prints the ticket and records
// that it printed.
type Till struct {
	Term    *Terminal
	Store   *Store
	Printer Printer
	// Online, when set, authorises each sale before its ticket is printed; nil is offline
	// mode: sales are reported with the next sync.
	Online Authorizer
}

// Printed is one ticket that came out of the printer.
type Printed struct {
	Sale      Sale
	Duplicate bool
}

// SaleError is a sale that is recorded but not (yet) printed; Ticket names it and the
// message says what the clerk should do.
type SaleError struct {
	Ticket string
	Err    error
}

func (e *SaleError) Error() string { return e.Err.Error() }
func (e *SaleError) Unwrap() error { return e.Err }

// Sell sells one code of product with the card of sess and prints its ticket. The sale is on
// disk before anything is printed. It returns the store's errors (out_of_stock, disk_full)
// with nothing recorded, ErrCardInactive when the card went away, and a *SaleError when the
// sale is recorded but its ticket is not printed: the printer failed (print it again with
// Reprint, as a DUPLICATE) or, online, the center did not answer (Resume asks it again) or
// refused it (nothing was printed; the code is void here).
func (t *Till) Sell(ctx context.Context, sess *CardSession, product string) (Printed, error) {
	var pin message.PIN
	sale, err := t.Store.Sell(product, sess.Vendor(), func(c ShelfCode) error {
		var err error
		pin, err = sess.Open(c)
		return err
	})
	if err != nil {
		return Printed{}, err
	}
	defer pin.Zero()
	return t.finish(ctx, sale, pin, false)
}

// finish authorises (online) and prints a recorded sale.
func (t *Till) finish(ctx context.Context, sale Sale, pin message.PIN, duplicate bool) (Printed, error) {
	if t.Online != nil && !sale.Authorized {
		err := t.Online.Authorize(ctx, message.Sale{Serial: sale.Serial, Ticket: sale.Ticket, Vendor: sale.Vendor, Time: sale.SoldAt})
		switch {
		case IsUnreachable(err):
			return Printed{}, &SaleError{Ticket: sale.Ticket, Err: fmt.Errorf(
				"online mode: %w.\nTicket %s is recorded but NOT printed and the customer must not pay yet; when the center answers again, run `evpos resume` to have it authorised and printed", err, sale.Ticket)}
		case err != nil:
			if rerr := t.Store.RefuseSale(sale.TicketNo, evoucher.ReasonOf(err)); rerr != nil {
				return Printed{}, errors.Join(err, rerr)
			}
			return Printed{}, &SaleError{Ticket: sale.Ticket, Err: fmt.Errorf(
				"the center refused the sale of serial %s (%w): nothing was printed and this code will not be offered again; sell again", sale.Serial, err)}
		}
		if err := t.Store.MarkAuthorized(sale.TicketNo); err != nil {
			return Printed{}, err
		}
		sale.Authorized = true
	}
	ticket := NewTicket(sale, t.Term.ID, pin, duplicate)
	defer ticket.Zero()
	if err := t.Printer.Print(ctx, ticket); err != nil {
		return Printed{}, &SaleError{Ticket: sale.Ticket, Err: fmt.Errorf(
			"%w.\nTicket %s is sold and recorded but did not print: check paper, power and cable of the printer, then run `evpos reprint %s` (it prints marked DUPLICATE); do not sell another code to this customer",
			err, sale.Ticket, sale.Ticket)}
	}
	if err := t.Store.MarkPrinted(sale.TicketNo, duplicate); err != nil {
		if evoucher.ReasonOf(err) == reasonDiskFull {
			return Printed{}, &SaleError{Ticket: sale.Ticket, Err: fmt.Errorf(
				"ticket %s printed: give it to the customer. %w.\nThe sale is recorded, only its printing is not: after freeing space, `evpos resume` prints it once more marked DUPLICATE, a copy to keep",
				sale.Ticket, err)}
		}
		return Printed{}, fmt.Errorf("ticket %s printed, but recording that failed: %w", sale.Ticket, err)
	}
	sale.Printed = true
	return Printed{Sale: sale, Duplicate: duplicate}, nil
}

// Reprint prints ticket n again, marked DUPLICATE and counted in the next sales report. In
// online mode a sale the center has not authorised yet is authorised first.
func (t *Till) Reprint(ctx context.Context, sess *CardSession, n int64) (Printed, error) {
	sale, err := t.Store.SaleOf(n)
	if err != nil {
		return Printed{}, err
	}
	pin, err := sess.Open(sale.ShelfCode)
	if err != nil {
		return Printed{}, err
	}
	defer pin.Zero()
	// An online sale never authorised never reached the printer: its first print is no
	// duplicate.
	dup := t.Online == nil || sale.Authorized
	return t.finish(ctx, sale, pin, dup)
}

// Resume finishes the sales recorded but not printed (after a crash, a dead printer or an
// unreachable center): each prints as a DUPLICATE, since its first print may have started,
// except an online sale the center never authorised, which never reached the printer. It
// stops at the first failure.
func (t *Till) Resume(ctx context.Context, sess *CardSession) ([]Printed, error) {
	pending, err := t.Store.Unprinted()
	if err != nil {
		return nil, err
	}
	var out []Printed
	for _, sale := range pending {
		p, err := t.Reprint(ctx, sess, sale.TicketNo)
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Return hands up to n unsold codes of product (all products when ""; n ≤ 0: all) back to
// the center: each is opened with the card and re-encrypted to the center's encryption
// certificate in a signed StockReturn, queued for the next sync. The codes leave the shelf in
// the same transaction.
func (t *Till) Return(sess *CardSession, product string, n int) ([]string, error) {
	der, err := t.Store.Get(keyCenterEncrypt)
	if err != nil {
		return nil, err
	}
	if der == nil {
		return nil, evoucher.Errorf(evoucher.KindUnavailable, "no_center_cert", "the center's encryption certificate is not here yet: run `evpos sync` once with the network")
	}
	center, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return t.Store.QueueReturn(product, n, func(shipmentID string, codes []ShelfCode) ([]byte, error) {
		list := make([]message.Code, 0, len(codes))
		defer func() {
			for _, c := range list {
				c.PIN.Zero()
			}
		}()
		for _, c := range codes {
			pin, err := sess.Open(c)
			if err != nil {
				return nil, err
			}
			list = append(list, message.Code{Serial: c.Serial, PIN: pin, Expiry: c.Expiry})
		}
		plain := message.ReturnCodes(shipmentID, list)
		enc, err := xenc.Encrypt(plain, xenc.TypeElement, xenc.Recipient{Cert: center})
		clear(plain)
		if err != nil {
			return nil, err
		}
		return t.Term.sign(message.BuildStockReturn(message.StockReturn{Envelope: t.Term.envelope("rt-"), ShipmentID: shipmentID, Encrypted: enc}))
	})
}

// QueueReport puts the sales not yet reported in the next signed SalesReport of the queue;
// with stock set it queues one even without sales, to tell the center the stock.
func (t *Till) QueueReport(stock bool) (seq int64, sales int, err error) {
	return t.Store.QueueReport(t.Term.Report, stock)
}

// CloseShift ends the shift: the sales not yet reported go in a SalesReport that also carries
// the closing stock (queued for the center), and the shift's reconciliation (opening stock,
// received, sold, returned, closing stock per product, reprints, card events) is signed with
// the terminal's key as a ShiftRecord kept in the store. It returns the summary and the
// signed record.
func (t *Till) CloseShift() (Shift, []byte, int64, error) {
	seq, _, err := t.QueueReport(true)
	if err != nil {
		return Shift{}, nil, 0, err
	}
	sh, rec, err := t.Store.CloseShift(func(sh Shift) ([]byte, error) {
		return t.Term.sign(buildShiftRecord(t.Term, sh, seq))
	})
	return sh, rec, seq, err
}

// buildShiftRecord is the signed end-of-shift record: a document in the exchange namespace,
// from the terminal to the center, that the terminal keeps and prints; its figures travel to
// the center as the closing SalesReport.
func buildShiftRecord(term *Terminal, sh Shift, reportSeq int64) *etree.Document {
	env := term.envelope("shift-")
	doc := etree.NewDocument()
	root := doc.CreateElement("ShiftRecord")
	root.CreateAttr("xmlns", message.NS)
	root.CreateAttr("Id", env.ID)
	root.CreateAttr("MessageId", env.MessageID)
	root.CreateAttr("Sender", env.Sender)
	root.CreateAttr("Recipient", env.Recipient)
	root.CreateAttr("Created", env.Created.Format(time.RFC3339Nano))
	add := func(parent *etree.Element, tag, text string) { parent.CreateElement(tag).SetText(text) }
	add(root, "Shift", fmt.Sprint(sh.ID))
	add(root, "Opened", sh.Opened.UTC().Format(time.RFC3339))
	add(root, "Closed", sh.Closed.UTC().Format(time.RFC3339))
	add(root, "ReportSeq", fmt.Sprint(reportSeq))
	add(root, "Reconciled", fmt.Sprint(sh.Reconciled()))
	for _, l := range sh.Lines {
		el := root.CreateElement("Product")
		for k, v := range map[string]any{"Operator": l.Operator, "Code": l.Product, "Opening": l.Opening, "Received": l.Received,
			"Sold": l.Sold, "Returned": l.Returned, "Voided": l.Voided, "Closing": l.Closing} {
			el.CreateAttr(k, fmt.Sprint(v))
		}
		el.SortAttrs()
	}
	add(root, "Reprints", fmt.Sprint(sh.Reprints))
	add(root, "Unprinted", fmt.Sprint(sh.Unprinted))
	for _, k := range []string{"wrong_pin", "pin_locked", "refused"} {
		el := root.CreateElement("CardEvents")
		el.CreateAttr("Kind", k)
		el.CreateAttr("Count", fmt.Sprint(sh.CardEvents[k]))
	}
	return doc
}
