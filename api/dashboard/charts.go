package dashboard

import (
	"bytes"
	"fmt"
	"html"
	"net/http"
	"sort"
	"time"

	"github.com/evoucher/evoucher/codevault"
)

func (d *Dashboard) chartsPage(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "charts", "Charts", nil)
}

var palette = []string{"#2f6fb3", "#d9822b", "#3a9d5d", "#b33a3a", "#7d5bb5", "#8c6d3f"}

// salesChart draws the sales per day and product over the last 14 days as an SVG line chart.
func (d *Dashboard) salesChart(w http.ResponseWriter, r *http.Request) {
	const days = 14
	ds, err := d.Vault.SalesPerDay(r.Context(), scopeOf(principal(r)), days)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	first := d.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1-days)
	series := map[string][]int64{}
	var top int64 = 1
	for _, s := range ds {
		k := s.Operator + "/" + s.Product
		if series[k] == nil {
			series[k] = make([]int64, days)
		}
		i := int(s.Day.Sub(first).Hours() / 24)
		if i >= 0 && i < days {
			series[k][i] = s.Sold
			top = max(top, s.Sold)
		}
	}
	names := make([]string, 0, len(series))
	for k := range series {
		names = append(names, k)
	}
	sort.Strings(names)
	const W, H, L, B = 640, 260, 40, 30
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`, W, H, W, H)
	fmt.Fprintf(&b, `<title>Sales per day and product, last %d days</title>`, days)
	fmt.Fprintf(&b, `<line x1="%d" y1="10" x2="%d" y2="%d" stroke="#888"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, L, L, H-B, L, H-B, W-10, H-B)
	fmt.Fprintf(&b, `<text x="2" y="16">%d</text><text x="2" y="%d">0</text>`, top, H-B)
	step := float64(W-L-20) / float64(days-1)
	for i := 0; i < days; i += 2 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%d">%s</text>`, float64(L)+float64(i)*step-12, H-B+14, first.AddDate(0, 0, i).Format("01-02"))
	}
	for n, k := range names {
		c := palette[n%len(palette)]
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="`, c)
		for i, v := range series[k] {
			fmt.Fprintf(&b, "%.1f,%.1f ", float64(L)+float64(i)*step, float64(H-B)-float64(v)/float64(top)*float64(H-B-20))
		}
		fmt.Fprintf(&b, `"/><text x="%d" y="%d" fill="%s">%s</text>`, W-150, 16+14*n, c, html.EscapeString(k))
	}
	if len(names) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no sales in the last %d days</text>`, W/2-80, H/2, days)
	}
	b.WriteString(`</svg>`)
	writeSVG(w, b.Bytes())
}

// coverChart draws, per terminal and product, the reported stock against its minimum and the
// days of cover at the last 7 days' sales rate, as horizontal bars.
func (d *Dashboard) coverChart(w http.ResponseWriter, r *http.Request) {
	ts, err := d.Vault.TerminalStocks(r.Context(), scopeOf(principal(r)))
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	ts = ts[:min(len(ts), 30)]
	var top float64 = 1
	for _, t := range ts {
		if t.Reported != nil {
			top = max(top, float64(*t.Reported), float64(t.Max))
		}
	}
	const W, row, L = 640, 22, 200
	H := 30 + row*max(len(ts), 1)
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`, W, H, W, H)
	b.WriteString(`<title>Stock at terminals against their minimum level, with days of cover</title>`)
	for i, t := range ts {
		y := 10 + i*row
		stock := 0
		if t.Reported != nil {
			stock = *t.Reported
		}
		c := palette[0]
		if stock < t.Min {
			c = palette[3]
		}
		width := float64(stock) / top * float64(W-L-120)
		fmt.Fprintf(&b, `<text x="2" y="%d">%s</text>`, y+12, html.EscapeString(t.Terminal+" "+t.Operator+"/"+t.Product))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="14" fill="%s"/>`, L, y, width, c)
		mx := float64(L) + float64(t.Min)/top*float64(W-L-120)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000" stroke-dasharray="2,2"/>`, mx, y-2, mx, y+16)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%d left, %s days</text>`, W-115, y+12, stock, funcs["cover"].(func(float64) string)(t.DaysOfCover))
	}
	if len(ts) == 0 {
		b.WriteString(`<text x="10" y="20">no terminal levels set</text>`)
	}
	b.WriteString(`</svg>`)
	writeSVG(w, b.Bytes())
}

func writeSVG(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_, _ = w.Write(b)
}

var _ = codevault.Scope{}
