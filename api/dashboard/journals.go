package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/codevault"
)

// journal is one of the lists the dashboard shows, exports as CSV and serves as JSON.
type journal struct {
	name, title string
	perm        access.Permission
	filters     []string // the filter fields that apply
	columns     []string
	// load returns the JSON value and the rows as text for the page and the CSV.
	load func(ctx context.Context, v Vault, f codevault.JournalFilter) (any, [][]string, error)
}

func t(tm any) string { return funcs["time"].(func(any) string)(tm) }

func journals() []journal {
	return []journal{
		{name: "batches", title: "Batches received", perm: access.SeeOperators, filters: []string{"operator", "product", "from", "to"},
			columns: []string{"received", "operator", "batch", "product", "parts verified", "parts", "codes stored", "lot count", "lot face value", "last part"},
			load: func(ctx context.Context, v Vault, f codevault.JournalFilter) (any, [][]string, error) {
				bs, err := v.Batches(ctx, f)
				rows := make([][]string, 0, len(bs))
				for _, b := range bs {
					rows = append(rows, []string{t(b.CreatedAt), b.Operator, b.Ref, b.Product, strconv.Itoa(b.PartsReceived), strconv.Itoa(b.Parts),
						strconv.FormatInt(b.Codes, 10), strconv.FormatInt(b.LotCount, 10), strconv.FormatInt(b.LotFaceValue, 10), t(b.LastPartAt)})
				}
				return bs, rows, err
			}},
		{name: "shipments", title: "Shipments", perm: access.SeeRetailers, filters: []string{"operator", "retailer", "terminal", "product", "state", "from", "to"},
			columns: []string{"sent", "shipment", "terminal", "retailer", "operator", "product", "codes", "state", "confirmed", "completed"},
			load: func(ctx context.Context, v Vault, f codevault.JournalFilter) (any, [][]string, error) {
				ss, err := v.Shipments(ctx, f)
				rows := make([][]string, 0, len(ss))
				for _, s := range ss {
					rows = append(rows, []string{t(s.CreatedAt), s.ID, s.Terminal, s.Retailer, s.Operator, s.Product, strconv.Itoa(s.Codes), s.State, t(s.ConfirmedAt), t(s.CompletedAt)})
				}
				return ss, rows, err
			}},
		{name: "sales", title: "Sales", perm: access.SeeRetailers, filters: []string{"operator", "retailer", "terminal", "product", "from", "to"},
			columns: []string{"sold", "terminal", "retailer", "vendor", "operator", "product", "serial", "ticket", "face value", "currency", "reprints", "online"},
			load: func(ctx context.Context, v Vault, f codevault.JournalFilter) (any, [][]string, error) {
				ss, err := v.Sales(ctx, f)
				rows := make([][]string, 0, len(ss))
				for _, s := range ss {
					rows = append(rows, []string{t(s.SoldAt), s.Terminal, s.Retailer, s.Vendor, s.Operator, s.Product, s.Serial, s.Ticket,
						strconv.FormatInt(s.FaceValue, 10), s.Currency, strconv.Itoa(s.Reprints), strconv.FormatBool(s.Online)})
				}
				return ss, rows, err
			}},
		{name: "orders", title: "Purchase orders", perm: access.SeeOperators, filters: []string{"operator", "product", "state", "from", "to"},
			columns: []string{"created", "order", "operator", "product", "quantity", "state", "fulfilled"},
			load: func(ctx context.Context, v Vault, f codevault.JournalFilter) (any, [][]string, error) {
				os, err := v.PurchaseOrders(ctx, f)
				rows := make([][]string, 0, len(os))
				for _, o := range os {
					rows = append(rows, []string{t(o.CreatedAt), o.ID, o.Operator, o.Product, strconv.Itoa(o.Quantity), o.State, t(o.FulfilledAt)})
				}
				return os, rows, err
			}},
		{name: "refusals", title: "Refused messages", perm: access.SeeNetwork, filters: []string{"state", "from", "to"},
			columns: []string{"received", "peer", "type", "message id", "sender", "reason", "detail", "size"},
			load: func(ctx context.Context, v Vault, f codevault.JournalFilter) (any, [][]string, error) {
				rs, err := v.Refusals(ctx, f)
				rows := make([][]string, 0, len(rs))
				for _, r := range rs {
					rows = append(rows, []string{t(r.ReceivedAt), r.Peer, r.Type, r.MessageID, r.Sender, r.Reason, r.Detail, strconv.Itoa(r.Size)})
				}
				return rs, rows, err
			}},
	}
}

// maxCSVRows bounds one CSV export.
const maxCSVRows = 10_000

// journalPage serves GET /ui/{journal}: the page, or with ?format=csv every matching row (up
// to 10,000) as CSV.
func (d *Dashboard) journalPage(j journal) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := ParseFilter(r.URL.Query())
		if err != nil {
			d.fail(w, r, false, err)
			return
		}
		f = confine(f, principal(r))
		csv := r.URL.Query().Get("format") == "csv"
		if csv {
			f.Limit, f.Offset = maxCSVRows, 0
		}
		_, rows, err := j.load(r.Context(), d.Vault, f)
		if err != nil {
			d.fail(w, r, false, err)
			return
		}
		if csv {
			writeCSV(w, j.name, j.columns, rows)
			return
		}
		q := r.URL.Query()
		page := f.Offset/f.Limit + 1
		link := func(p int) string {
			q2 := url.Values{}
			for k, v := range q {
				q2[k] = v
			}
			q2.Set("page", strconv.Itoa(p))
			return "?" + q2.Encode()
		}
		qc := url.Values{}
		for k, v := range q {
			qc[k] = v
		}
		qc.Del("page")
		qc.Set("format", "csv")
		data := map[string]any{"Journal": j.name, "Columns": j.columns, "Rows": rows, "Filters": j.filters, "Query": q,
			"Page": page, "CSV": "?" + qc.Encode()}
		if page > 1 {
			data["Prev"] = link(page - 1)
		}
		if len(rows) == f.Limit {
			data["Next"] = link(page + 1)
		}
		d.render(w, r, http.StatusOK, "journal", j.title, data)
	}
}

// journalJSON serves GET /api/v1/{journal}.
func (d *Dashboard) journalJSON(j journal) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := ParseFilter(r.URL.Query())
		if err != nil {
			d.fail(w, r, true, err)
			return
		}
		v, _, err := j.load(r.Context(), d.Vault, confine(f, principal(r)))
		if err != nil {
			d.fail(w, r, true, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

var _ = fmt.Sprint
