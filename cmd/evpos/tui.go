package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/evoucher/evoucher/pos"
)

// tui is the clerk's full-screen mode (tview on tcell). It calls the same session functions as
// the scriptable commands: card activation, Till.Sell, Reprint, Resume, Sync and closeShift.
// It never shows a code: the only place a PIN appears is the ticket preview, when the ticket is
// "printed" on the screen (--printer stdout), and the preview is wiped when it is closed.
//
// Layout, from 40 columns up: a status block (terminal, card, last sync, queue), the stock
// per product (select a line, Enter sells one), the center's alarms about this terminal (only
// when there are some), the terminal's last alarm lines, a message line, the keys.
type tui struct {
	s       *session
	g       *globals
	ctx     context.Context
	app     *tview.Application
	pages   *tview.Pages
	status  *tview.TextView
	stock   *tview.Table
	alarms  *tview.TextView // the terminal's own alarm lines
	center  *tview.TextView // the center's alarms about this terminal, as of the last sync
	body    *tview.Flex
	msg     *tview.TextView
	busy    bool   // an action runs in the background (sync): other actions wait
	screen  bool   // tickets go to the preview instead of a printer
	lastCrd string // the last card token inserted, offered again
}

// runTUI runs the full-screen mode until the clerk quits (q) or ctx ends.
func runTUI(ctx context.Context, s *session, g *globals, screen tcell.Screen) error {
	t := &tui{s: s, g: g, ctx: ctx, app: tview.NewApplication()}
	if screen != nil {
		t.app.SetScreen(screen)
	}
	if tp, ok := s.till.Printer.(*pos.TextPrinter); ok && tp.W != nil {
		// A ticket "printed" on stdout would tear the screen: it goes to the preview.
		t.screen = true
	}
	t.build()
	t.refresh()
	go func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				t.app.Stop()
				return
			case <-tick.C:
				// The idle timeout ends a card session: the screen says so without a key press.
				t.app.QueueUpdateDraw(t.refreshStatus)
			}
		}
	}()
	return t.app.Run()
}

func (t *tui) build() {
	t.status = tview.NewTextView().SetDynamicColors(true)
	t.stock = tview.NewTable().SetSelectable(true, false).SetFixed(1, 0)
	t.stock.SetSelectedFunc(func(row, _ int) { t.sellRow(row) })
	t.alarms = tview.NewTextView().SetDynamicColors(true)
	t.center = tview.NewTextView().SetDynamicColors(true).SetWordWrap(true)
	t.msg = tview.NewTextView().SetDynamicColors(true).SetWordWrap(true)
	keys := tview.NewTextView().SetDynamicColors(true).SetWordWrap(true).
		SetText("[::b]Enter[::-] sell  [::b]c[::-] card  [::b]x[::-] out  [::b]r[::-] reprint  [::b]y[::-] sync  [::b]u[::-] resume  [::b]k[::-] close shift  [::b]q[::-] quit")
	rule := func() tview.Primitive {
		return tview.NewTextView().SetText(strings.Repeat("─", 200))
	}
	main := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(t.status, 4, 0, false).
		AddItem(rule(), 1, 0, false).
		AddItem(t.stock, 0, 1, true).
		AddItem(rule(), 1, 0, false).
		AddItem(t.center, 0, 0, false). // resized by refreshStatus
		AddItem(t.alarms, 3, 0, false).
		AddItem(t.msg, 3, 0, false).
		AddItem(keys, 2, 0, false)
	t.body = main
	t.pages = tview.NewPages().AddPage("main", main, true, true)
	t.app.SetRoot(t.pages, true).SetFocus(t.stock)
	t.app.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		if name, _ := t.pages.GetFrontPage(); name != "main" {
			return ev // a form or the preview has the keys
		}
		if ev.Key() == tcell.KeyCtrlC {
			t.app.Stop()
			return nil
		}
		switch ev.Rune() {
		case 'q':
			t.app.Stop()
		case 'c':
			t.cardForm()
		case 'x':
			t.cardOut()
		case 'r':
			t.reprintList()
		case 'y':
			t.sync()
		case 'u':
			t.resume()
		case 'k':
			t.confirmClose()
		default:
			return ev
		}
		return nil
	})
}

// say puts a message on the message line; errors in red.
func (t *tui) say(err error, ok string) {
	if err != nil {
		t.msg.SetText("[red]" + tview.Escape(err.Error()))
		return
	}
	t.msg.SetText(tview.Escape(ok))
}

func (t *tui) refresh() {
	t.refreshStatus()
	t.refreshStock()
}

func (t *tui) refreshStatus() {
	card := "[yellow]no card[-]: press c"
	if t.s.card != nil {
		if ok, why := t.s.card.Active(); ok {
			card = "[green]card " + t.s.card.Vendor() + " ACTIVE[-]"
		} else {
			card = "[yellow]card off[-]: " + tview.Escape(why)
		}
	}
	st, _ := t.s.till.Status()
	mode := "offline"
	if t.g.online {
		mode = "online"
	}
	busy := ""
	if t.busy {
		busy = "  [yellow]working…[-]"
	}
	t.status.SetText(fmt.Sprintf("[::b]evpos[::-] terminal %s (%s)%s\n%s\nsync %s\nqueued %d  unprinted %d  bad PINs %d",
		t.s.term.ID, mode, busy, card, orNever(shortTime(st.LastSync)), st.Queued, st.Unprinted, st.CardEvents["wrong_pin"]))
	var lines []string
	for _, a := range st.Alarms[max(0, len(st.Alarms)-3):] {
		lines = append(lines, "[red]![-] "+tview.Escape(a))
	}
	t.alarms.SetText(strings.Join(lines, "\n"))
	// The center's alarms take three rows when there are some; `evpos status` lists them all.
	lines = lines[:0]
	for i, a := range st.Center {
		lines = append(lines, fmt.Sprintf("[yellow::b]center %d/%d[-::-] %s", i+1, len(st.Center), tview.Escape(a.Label()+": "+a.Message)))
	}
	t.center.SetText(strings.Join(lines, "\n"))
	t.body.ResizeItem(t.center, min(3, 3*len(st.Center)), 0)
}

func shortTime(rfc string) string {
	if ts, err := time.Parse(time.RFC3339, rfc); err == nil {
		return ts.Local().Format("01-02 15:04")
	}
	return rfc
}

func (t *tui) refreshStock() {
	t.stock.Clear()
	head := func(s string) *tview.TableCell {
		return tview.NewTableCell(s).SetAttributes(tcell.AttrBold).SetSelectable(false)
	}
	t.stock.SetCell(0, 0, head("PRODUCT")).SetCell(0, 1, head("VALUE")).SetCell(0, 2, head("SHELF").SetAlign(tview.AlignRight))
	lines, err := t.s.store.Stock()
	if err != nil {
		t.say(err, "")
	}
	for i, l := range lines {
		t.stock.SetCell(i+1, 0, tview.NewTableCell(l.Product).SetReference(l.Product).SetExpansion(1))
		t.stock.SetCell(i+1, 1, tview.NewTableCell(pos.Money(l.FaceValue, l.Currency)))
		t.stock.SetCell(i+1, 2, tview.NewTableCell(fmt.Sprint(l.OnShelf)).SetAlign(tview.AlignRight))
	}
	if len(lines) == 0 {
		t.stock.SetCell(1, 0, tview.NewTableCell("no stock: sync (y)").SetSelectable(false))
	}
}

// ready says whether an action may start now.
func (t *tui) ready() bool {
	if t.busy {
		t.say(nil, "wait: the sync is still running")
		return false
	}
	return true
}

func (t *tui) needCard() bool {
	if t.s.card == nil {
		t.say(nil, "insert a vendor card first: press c")
		return false
	}
	return true
}

// printer returns the till's printer for one action, and the preview buffer when tickets go
// to the screen.
func (t *tui) printer() *bytes.Buffer {
	if !t.screen {
		return nil
	}
	buf := &bytes.Buffer{}
	t.s.till.Printer = &pos.TextPrinter{W: buf, Width: t.g.width}
	return buf
}

func (t *tui) sellRow(row int) {
	if !t.ready() || !t.needCard() {
		return
	}
	product, _ := t.stock.GetCell(row, 0).GetReference().(string)
	if product == "" {
		return
	}
	buf := t.printer()
	p, err := t.s.till.Sell(t.ctx, t.s.card, product)
	t.refresh()
	if err != nil {
		t.say(err, "")
		return
	}
	t.say(nil, fmt.Sprintf("sold ticket %s (serial %s) by %s", p.Sale.Ticket, p.Sale.Serial, p.Sale.Vendor))
	t.preview(buf, "ticket "+p.Sale.Ticket)
}

// preview shows a ticket printed on the screen, the only place a code appears, and wipes it
// when the clerk closes it (Enter or Esc).
func (t *tui) preview(buf *bytes.Buffer, title string) {
	if buf == nil || buf.Len() == 0 {
		return
	}
	tv := tview.NewTextView().SetText(buf.String())
	clear(buf.Bytes())
	buf.Reset()
	tv.SetBorder(false)
	head := tview.NewTextView().SetText("PRINTED " + title + " — Enter: done")
	box := tview.NewFlex().SetDirection(tview.FlexRow).AddItem(head, 1, 0, false).AddItem(tv, 0, 1, true)
	tv.SetDoneFunc(func(tcell.Key) {
		tv.Clear()
		t.pages.RemovePage("preview")
		t.app.SetFocus(t.stock)
	})
	t.pages.AddPage("preview", box, true, true)
	t.app.SetFocus(tv)
}

// cardForm asks for the card (its token) and its PIN, masked, and activates it.
func (t *tui) cardForm() {
	if !t.ready() {
		return
	}
	cardTok := t.lastCrd
	if cardTok == "" {
		if certs, _ := filepath.Glob(filepath.Join(t.g.dir, "cards", "*.pem")); len(certs) > 0 {
			cardTok = strings.TrimSuffix(filepath.Base(certs[0]), ".pem")
		}
	}
	form := tview.NewForm()
	form.AddInputField("Card", cardTok, 20, nil, nil)
	form.AddPasswordField("PIN", "", 20, '*', nil)
	done := func() {
		t.pages.RemovePage("card")
		t.app.SetFocus(t.stock)
	}
	form.AddButton("OK", func() {
		tokIn := form.GetFormItemByLabel("Card").(*tview.InputField)
		pinIn := form.GetFormItemByLabel("PIN").(*tview.InputField)
		token, pin := strings.TrimSpace(tokIn.GetText()), pinIn.GetText()
		pinIn.SetText("")
		done()
		t.lastCrd = token
		err := t.s.activate(cardFlags{token: token, label: "card"}, pin)
		if err != nil {
			t.s.card = nil
		}
		t.refresh()
		if err == nil {
			t.say(nil, "card "+t.s.card.Vendor()+" activated: select a product, Enter sells one")
		} else {
			t.say(err, "")
		}
	})
	form.AddButton("Cancel", done)
	form.SetCancelFunc(done)
	form.SetBorder(true).SetTitle(" insert card ")
	t.pages.AddPage("card", form, true, true)
	t.app.SetFocus(form)
	if cardTok != "" {
		form.SetFocus(1) // straight to the PIN
		t.app.SetFocus(form)
	}
}

func (t *tui) cardOut() {
	if t.s.card == nil {
		t.say(nil, "no card inserted")
		return
	}
	t.s.card.Close()
	t.s.card = nil
	if t.s.cardTk != nil {
		_ = t.s.cardTk.Close()
		t.s.cardTk = nil
	}
	t.refresh()
	t.say(nil, "card removed: its keys are wiped")
}

// reprintList lists the last tickets (numbers, products, times; never a code) to reprint one.
func (t *tui) reprintList() {
	if !t.ready() || !t.needCard() {
		return
	}
	sales, err := t.s.store.RecentSales(10)
	if err != nil || len(sales) == 0 {
		t.say(err, "no ticket to reprint")
		return
	}
	list := tview.NewList().ShowSecondaryText(false)
	done := func() {
		t.pages.RemovePage("reprint")
		t.app.SetFocus(t.stock)
	}
	for _, sale := range sales {
		label := fmt.Sprintf("%s %s %s", sale.Ticket, sale.Product, sale.SoldAt.Local().Format("15:04"))
		list.AddItem(label, "", 0, func() {
			done()
			buf := t.printer()
			p, err := t.s.till.Reprint(t.ctx, t.s.card, sale.TicketNo)
			t.refresh()
			if err != nil {
				t.say(err, "")
				return
			}
			t.say(nil, "reprinted "+p.Sale.Ticket+dupNote(p.Duplicate))
			t.preview(buf, p.Sale.Ticket+dupNote(p.Duplicate))
		})
	}
	list.SetDoneFunc(done)
	list.SetBorder(true).SetTitle(" reprint which ticket? ")
	t.pages.AddPage("reprint", list, true, true)
	t.app.SetFocus(list)
}

func (t *tui) resume() {
	if !t.ready() || !t.needCard() {
		return
	}
	buf := t.printer()
	done, err := t.s.till.Resume(t.ctx, t.s.card)
	t.refresh()
	t.say(err, fmt.Sprintf("%d ticket(s) printed", len(done)))
	t.preview(buf, fmt.Sprintf("%d ticket(s)", len(done)))
}

// sync runs in the background: the network may be slow; the screen stays live meanwhile.
func (t *tui) sync() {
	if !t.ready() {
		return
	}
	t.busy = true
	t.refreshStatus()
	t.say(nil, "syncing with the center…")
	go func() {
		res, err := t.s.till.Sync(t.ctx, t.s.center)
		t.app.QueueUpdateDraw(func() {
			t.busy = false
			t.refresh()
			t.say(err, fmt.Sprintf("synced: %d shipment(s) in, %d sent, %d refused", len(res.Received), len(res.Sent), len(res.Refused)))
		})
	}()
}

func (t *tui) confirmClose() {
	if !t.ready() {
		return
	}
	m := tview.NewModal().SetText("Close the shift? Its report is signed, printed and sent.").
		AddButtons([]string{"Close shift", "Cancel"}).
		SetDoneFunc(func(i int, _ string) {
			t.pages.RemovePage("confirm")
			t.app.SetFocus(t.stock)
			if i == 0 {
				t.closeShift()
			}
		})
	t.pages.AddPage("confirm", m, true, true)
	t.app.SetFocus(m)
}

func (t *tui) closeShift() {
	buf := t.printer()
	var out bytes.Buffer
	res, err := t.s.closeShift(t.ctx, &out)
	t.refresh()
	switch {
	case err != nil:
		t.say(err, "")
	case res.queued:
		t.say(nil, fmt.Sprintf("shift %d closed; the center is unreachable, the report waits for the next sync", res.shift.ID))
	default:
		t.say(nil, fmt.Sprintf("shift %d closed and sent; record %s", res.shift.ID, filepath.Base(res.path)))
	}
	switch {
	case buf != nil: // printed on the screen
	case out.Len() > 0: // a printer that takes no plain lines (PDF)
		buf = &out
	case res.printErr != nil && len(res.lines) > 0:
		buf = bytes.NewBufferString(strings.Join(res.lines, "\n") + "\n")
	default:
		return // on paper
	}
	t.preview(buf, fmt.Sprintf("shift %d report", res.shift.ID))
}

// isTerminal reports whether f is a terminal (the full screen needs one).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
