package dashboard

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/ledger"
)

type pageTemplate struct{ t *template.Template }

var funcs = template.FuncMap{
	"time": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.UTC().Format("2006-01-02 15:04:05")
		case *time.Time:
			if v == nil {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05")
		}
		return ""
	},
	"cover": func(f float64) string {
		if f < 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f", f)
	},
	"money": ledger.FormatAmount,
	"minor": ledger.FormatMinor,
	"pct":   func(bps int) string { return fmt.Sprintf("%d.%02d%%", bps/100, bps%100) },
	"list":  func(s ...string) []string { return s },
	"deref": func(p *int) string {
		if p == nil {
			return "–"
		}
		return fmt.Sprint(*p)
	},
}

// parsePages parses each page template with the layout.
func parsePages() (map[string]*pageTemplate, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*pageTemplate{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", n, err)
		}
		pages[base] = &pageTemplate{t}
	}
	return pages, nil
}

// view is what every page template gets.
type view struct {
	Title string
	User  *access.Principal
	CSRF  string
	Path  string
	Flash string
	Data  any
}

// render writes page with status, inside the layout.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	p, ok := d.pages[page]
	if !ok {
		http.Error(w, "internal error", http.StatusInternalServerError)
		d.Logger.ErrorContext(r.Context(), "no such template", "page", page)
		return
	}
	v := view{Title: title, Path: r.URL.Path, Data: data, Flash: r.URL.Query().Get("flash")}
	if pr, ok := r.Context().Value(principalKey{}).(access.Principal); ok {
		v.User = &pr
		v.CSRF = access.CSRFOf(sessionToken(r))
	}
	var buf bytes.Buffer
	if err := p.t.Execute(&buf, v); err != nil {
		d.Logger.ErrorContext(r.Context(), "template failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeCSV writes a CSV attachment. Cells that a spreadsheet would run as a formula are
// prefixed with a quote.
func writeCSV(w http.ResponseWriter, name string, header []string, rows [][]string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	_ = cw.Write(header)
	for _, row := range rows {
		for i, c := range row {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				row[i] = "'" + c
			}
		}
		_ = cw.Write(row)
	}
	cw.Flush()
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// redirect answers a form post with 303 to where, carrying a message for the next page.
func redirect(w http.ResponseWriter, r *http.Request, where, flash string) {
	if flash != "" {
		sep := "?"
		if strings.Contains(where, "?") {
			sep = "&"
		}
		where += sep + "flash=" + url.QueryEscape(flash)
	}
	http.Redirect(w, r, where, http.StatusSeeOther)
}
