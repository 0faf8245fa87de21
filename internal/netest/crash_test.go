package netest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/internal/netest"
	"github.com/evoucher/evoucher/xml/message"
)

// till is what one terminal knows, as a real terminal would keep it: the shipments it holds,
// its codes not yet sold, the reports it sent, and what it sent without getting an answer.
type till struct {
	t         *netest.Terminal
	shipments map[string][]string // shipment id → serials
	unsold    []string
	sold      map[int64][]string // report seq → serials sold in it
	acked     int64              // the highest report answered with a Receipt
	tickets   int

	// Sent, unanswered: to send again, byte for byte, before anything else.
	report       []byte
	reportSeq    int64
	reportSales  []string
	orders, acks [][]byte
}

// counters are the outcomes the test tallies, for its log.
type counters struct {
	orders, shipped, outOfStock, reports, sales, acks atomic.Int64
	unanswered, resentTaken, resentStored             atomic.Int64
	ordersReplayRefused, recoveredBySync              atomic.Int64
}

// TestCrashDuringAllocationAndSales: five times, a server takes concurrent orders, acks and
// sales reports from 16 terminals and is killed (SIGKILL) at a random moment; a new server
// starts on the same database, the terminals send again what got no answer and sync. Each
// time: every code is in exactly one state and place, no code in two shipments, nothing lost,
// every sale recorded once, and each terminal's report_seq is the last report it got a
// receipt for, or the one after when the crash took that report but lost its answer.
func TestCrashDuringAllocationAndSales(t *testing.T) {
	ctx := context.Background()
	n := mustNetwork(t)
	srv := mustServer(t, n)
	const stock, terminals, rounds = 4000, 16, 5
	mustUpload(t, n, srv, stock)
	shop := netest.Shop{Retailer: "R-X", Vendors: []string{"V-X1", "V-X2"}, KeyPerParty: true}
	for i := range terminals {
		shop.Terminals = append(shop.Terminals, fmt.Sprintf("T-X%02d", i))
	}
	terms, err := n.AddShop(ctx, srv, shop)
	if err != nil {
		t.Fatal(err)
	}
	tills := make([]*till, len(terms))
	for i, term := range terms {
		tills[i] = &till{t: term, shipments: map[string][]string{}, sold: map[int64][]string{}}
	}
	var c counters

	for round := 1; round <= rounds; round++ {
		// Load, and a crash at a random moment of it.
		var killed atomic.Bool
		var wg sync.WaitGroup
		for _, tl := range tills {
			wg.Go(func() { tl.work(t, ctx, srv, &killed, &c) })
		}
		after := time.Duration(200+rand.IntN(1300)) * time.Millisecond
		time.Sleep(after)
		killed.Store(true)
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		unanswered := 0
		for _, tl := range tills {
			unanswered += len(tl.orders) + len(tl.acks)
			if tl.report != nil {
				unanswered++
			}
		}
		t.Logf("round %d: %s killed after %s with %d requests unanswered", round, srv.Name, after, unanswered)

		srv = mustServer(t, n)
		// Before anything is sent again: the database as the crash left it.
		tot, err := n.CheckInvariants(ctx, stock)
		if err != nil {
			t.Fatalf("round %d, after the crash: %v", round, err)
		}
		for _, tl := range tills {
			seq := tot.ReportSeq[tl.t.ID]
			if seq != tl.acked && (tl.report == nil || seq != tl.reportSeq) {
				t.Fatalf("round %d: %s has report_seq %d; its last receipt was for %d, unanswered: %d", round, tl.t.ID, seq, tl.acked, tl.reportSeq)
			}
		}

		// Recovery: what got no answer goes again, byte for byte, then a sync.
		for _, tl := range tills {
			wg.Go(func() { tl.recover(t, ctx, srv, &c) })
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		tot, err = n.CheckInvariants(ctx, stock)
		if err != nil {
			t.Fatalf("round %d, after recovery: %v", round, err)
		}
		for _, tl := range tills {
			tl.check(t, round, tot)
		}
		if t.Failed() {
			t.FailNow()
		}
		t.Logf("round %d: %d in the vault, %d shipped, %d delivered, %d sold; %d shipments", round,
			tot.InVault, tot.Shipped, tot.Delivered, tot.Sold, tot.Shipments)
	}
	t.Logf("orders %d (%d shipped codes, %d out of stock), reports %d (%d sales), acks %d; unanswered %d: taken when sent again %d, "+
		"answered from the stored response %d; orders refused as replays after a crash %d; shipments found only by sync %d",
		c.orders.Load(), c.shipped.Load(), c.outOfStock.Load(), c.reports.Load(), c.sales.Load(), c.acks.Load(),
		c.unanswered.Load(), c.resentTaken.Load(), c.resentStored.Load(), c.ordersReplayRefused.Load(), c.recoveredBySync.Load())
	if c.unanswered.Load() == 0 {
		t.Fatal("no request was ever cut off by a crash: the test tested nothing")
	}
	if err := srv.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// work orders, acknowledges and reports sales until the server is killed under it; a request
// without an answer is kept to be sent again and ends the terminal's round.
func (tl *till) work(t *testing.T, ctx context.Context, srv *netest.Server, killed *atomic.Bool, c *counters) {
	for !killed.Load() {
		if len(tl.unsold) >= 20 || (len(tl.unsold) > 0 && rand.IntN(3) > 0) {
			k := min(len(tl.unsold), 1+rand.IntN(5))
			serials := tl.unsold[:k]
			seq := tl.acked + 1
			doc, err := tl.t.Report(seq, tl.sales(serials), nil)
			if err != nil {
				t.Error(err)
				return
			}
			// The codes are in a report now: never sold again, whatever comes back.
			tl.unsold = tl.unsold[k:]
			c.reports.Add(1)
			resp, err := tl.t.Exchange(ctx, srv, doc)
			if errors.Is(err, netest.ErrNoAnswer) {
				tl.report, tl.reportSeq, tl.reportSales = doc, seq, serials
				c.unanswered.Add(1)
				return
			}
			if err := tl.receipt(resp, err); err != nil {
				t.Errorf("%s report %d: %v", tl.t.ID, seq, err)
				return
			}
			tl.acked, tl.sold[seq] = seq, serials
			c.sales.Add(int64(k))
			continue
		}
		doc, err := tl.t.Order("OP-A", "P10", 5+rand.IntN(11))
		if err != nil {
			t.Error(err)
			return
		}
		c.orders.Add(1)
		resp, err := tl.t.Exchange(ctx, srv, doc)
		switch {
		case errors.Is(err, netest.ErrNoAnswer):
			tl.orders = append(tl.orders, doc)
			c.unanswered.Add(1)
			return
		case evoucher.ReasonOf(err) == "out_of_stock":
			c.outOfStock.Add(1)
			time.Sleep(20 * time.Millisecond)
			continue
		case err != nil:
			t.Errorf("%s order: %v", tl.t.ID, err)
			return
		}
		sh, err := tl.take(resp)
		if err != nil {
			t.Errorf("%s: %v", tl.t.ID, err)
			return
		}
		c.shipped.Add(int64(len(sh.Codes)))
		if rand.IntN(2) == 0 {
			continue
		}
		ack, err := tl.t.Ack(sh)
		if err != nil {
			t.Error(err)
			return
		}
		c.acks.Add(1)
		resp, err = tl.t.Exchange(ctx, srv, ack)
		if errors.Is(err, netest.ErrNoAnswer) {
			tl.acks = append(tl.acks, ack)
			c.unanswered.Add(1)
			return
		}
		if err := tl.receipt(resp, err); err != nil {
			t.Errorf("%s ack of %s: %v", tl.t.ID, sh.ShipmentID, err)
			return
		}
	}
}

// recover sends again, byte for byte, what got no answer, then syncs the shipments.
func (tl *till) recover(t *testing.T, ctx context.Context, srv *netest.Server, c *counters) {
	stored := func(resp []byte) {
		// A stored answer was signed before this server started; a new one after.
		if doc, err := message.Parse(resp, message.DefaultLimits); err == nil {
			if env, err := message.ReadEnvelope(doc.Root()); err == nil && env.Created.Before(srv.Started) {
				c.resentStored.Add(1)
				return
			}
		}
		c.resentTaken.Add(1)
	}
	if tl.report != nil {
		resp, err := tl.t.Exchange(ctx, srv, tl.report)
		if err := tl.receipt(resp, err); err != nil {
			t.Errorf("%s report %d sent again: %v", tl.t.ID, tl.reportSeq, err)
			return
		}
		stored(resp)
		tl.acked, tl.sold[tl.reportSeq] = tl.reportSeq, tl.reportSales
		c.sales.Add(int64(len(tl.reportSales)))
		tl.report, tl.reportSales = nil, nil
	}
	for _, doc := range tl.orders {
		resp, err := tl.t.Exchange(ctx, srv, doc)
		switch {
		case err == nil:
			sh, err := tl.take(resp)
			if err != nil {
				t.Errorf("%s: %v", tl.t.ID, err)
				return
			}
			stored(resp)
			c.shipped.Add(int64(len(sh.Codes)))
		case evoucher.ReasonOf(err) == "replay":
			// The crash came after the center registered the order and before it stored
			// the answer: the order is refused as a replay from now on. Its shipment, if it
			// was made, comes with the sync below.
			c.ordersReplayRefused.Add(1)
		case evoucher.ReasonOf(err) == "out_of_stock":
			c.outOfStock.Add(1)
		default:
			t.Errorf("%s order sent again: %v", tl.t.ID, err)
			return
		}
	}
	tl.orders = nil
	docs, err := tl.t.PendingShipments(ctx, srv)
	if err != nil {
		t.Errorf("%s sync: %v", tl.t.ID, err)
		return
	}
	for _, raw := range docs {
		sh, err := tl.t.OpenShipment(raw)
		if err != nil {
			t.Errorf("%s sync: %v", tl.t.ID, err)
			return
		}
		if _, ok := tl.shipments[sh.ShipmentID]; ok {
			continue
		}
		if _, err := tl.take(raw); err != nil {
			t.Errorf("%s: %v", tl.t.ID, err)
			return
		}
		c.recoveredBySync.Add(1)
		c.shipped.Add(int64(len(sh.Codes)))
	}
	for _, ack := range tl.acks {
		resp, err := tl.t.Exchange(ctx, srv, ack)
		if err := tl.receipt(resp, err); err != nil {
			t.Errorf("%s ack sent again: %v", tl.t.ID, err)
			return
		}
		stored(resp)
	}
	tl.acks = nil
}

// check compares what the terminal knows with the database, once nothing is unanswered.
func (tl *till) check(t *testing.T, round int, tot netest.Totals) {
	id := tl.t.ID
	if seq := tot.ReportSeq[id]; seq != tl.acked {
		t.Errorf("round %d: %s has report_seq %d, its last report answered is %d", round, id, seq, tl.acked)
	}
	ids := slices.Sorted(maps.Keys(tl.shipments))
	stored := slices.Sorted(slices.Values(tot.ShipmentsByTerminal[id]))
	if !slices.Equal(ids, stored) {
		t.Errorf("round %d: %s holds shipments %v, the center sent it %v", round, id, ids, stored)
	}
	for sid, serials := range tl.shipments {
		if !slices.Equal(serials, tot.SerialsByShipment[sid]) {
			t.Errorf("round %d: %s: shipment %s holds %v, the center stored %v", round, id, sid, serials, tot.SerialsByShipment[sid])
		}
	}
	reported := map[string]bool{}
	for _, serials := range tl.sold {
		for _, s := range serials {
			if reported[s] {
				t.Errorf("round %d: %s reported %s twice", round, id, s)
			}
			reported[s] = true
		}
	}
	if !maps.Equal(reported, tot.SalesByTerminal[id]) {
		t.Errorf("round %d: %s reported %d sales, the center recorded %d", round, id, len(reported), len(tot.SalesByTerminal[id]))
	}
}

// take opens a shipment sent to the terminal and shelves its codes.
func (tl *till) take(raw []byte) (message.Shipment, error) {
	sh, err := tl.t.OpenShipment(raw)
	if err != nil {
		return sh, err
	}
	if _, ok := tl.shipments[sh.ShipmentID]; ok {
		return sh, fmt.Errorf("shipment %s arrived twice", sh.ShipmentID)
	}
	serials := make([]string, len(sh.Codes))
	for i, c := range sh.Codes {
		serials[i] = c.Serial
	}
	tl.shipments[sh.ShipmentID] = serials
	tl.unsold = append(tl.unsold, serials...)
	return sh, nil
}

// sales are the tickets for serials, sold now with the retailer's first card.
func (tl *till) sales(serials []string) []message.Sale {
	out := make([]message.Sale, len(serials))
	for i, s := range serials {
		tl.tickets++
		out[i] = message.Sale{Serial: s, Ticket: fmt.Sprintf("K-%06d", tl.tickets), Vendor: tl.t.Cards[0].Vendor, Time: time.Now().UTC()}
	}
	return out
}

// receipt checks an answer is the center's accepted or duplicate Receipt.
func (tl *till) receipt(resp []byte, err error) error {
	if err != nil {
		return err
	}
	rc, err := tl.t.OpenReceipt(resp)
	if err != nil {
		return err
	}
	if rc.Status != message.StatusAccepted && rc.Status != message.StatusDuplicate {
		return fmt.Errorf("receipt status %q: %s", rc.Status, rc.Detail)
	}
	return nil
}
