package dashboard

import (
	"context"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/operator"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/retailer"
)

func (d *Dashboard) adminRoutes(r chi.Router) {
	r.With(d.need(access.SeeRetailers)).Get("/ui/retailers", d.retailersPage)
	r.With(d.need(access.ManageRetailers)).Post("/ui/retailers", d.createRetailer)
	r.With(d.need(access.SeeRetailers)).Get("/ui/retailers/{id}", d.retailerPage)
	r.With(d.need(access.ManageTerminals)).Post("/ui/retailers/{id}/terminals", d.addTerminal)
	r.With(d.need(access.ManageTerminals)).Post("/ui/retailers/{id}/vendors", d.addVendor)
	r.With(d.need(access.SeeRetailers)).Get("/ui/terminals/{id}", d.terminalPage)
	r.With(d.need(access.ManageTerminals)).Post("/ui/terminals/{id}/levels", d.setLevel)
	r.With(d.need(access.ManageTerminals)).Post("/ui/terminals/{id}/code", d.issueCode(pki.RoleTerminal))
	r.With(d.need(access.ManageTerminals)).Post("/ui/terminals/{id}/revoke", d.revoke(pki.RoleTerminal))
	r.With(d.need(access.ManageTerminals)).Post("/ui/vendors/{id}/code", d.issueCode(pki.RoleVendor))
	r.With(d.need(access.ManageTerminals)).Post("/ui/vendors/{id}/revoke", d.revoke(pki.RoleVendor))
	r.With(d.need(access.SeeOperators)).Get("/ui/operators", d.operatorsPage)
	r.With(d.need(access.ManageOperators)).Post("/ui/operators", d.createOperator)
	r.With(d.need(access.SeeOperators)).Get("/ui/operators/{id}", d.operatorPage)
	r.With(d.need(access.ManageOperators)).Post("/ui/operators/{id}/products", d.createProduct)
}

func hidden(what, id string) error {
	return evoucher.Errorf(evoucher.KindNotFound, "unknown_"+what, "no %s %q", what, id)
}

// visibleRetailer returns the retailer if the user may see it; not found otherwise, so a
// scoped user learns nothing about other retailers.
func (d *Dashboard) visibleRetailer(ctx context.Context, p access.Principal, id string) (retailer.Retailer, error) {
	if !p.SeesRetailer(id) {
		return retailer.Retailer{}, hidden("retailer", id)
	}
	return d.Shops.Retailer(ctx, id)
}

// visibleParty returns the retailer of a terminal or vendor card if the user may see it.
func (d *Dashboard) visibleParty(ctx context.Context, p access.Principal, role pki.Role, id string) (string, error) {
	var rt string
	var err error
	if role == pki.RoleTerminal {
		var t retailer.Terminal
		t, err = d.Shops.Terminal(ctx, id)
		rt = t.Retailer
	} else {
		var v retailer.Vendor
		v, err = d.Shops.Vendor(ctx, id)
		rt = v.Retailer
	}
	if err != nil {
		return "", err
	}
	if !p.SeesRetailer(rt) {
		return "", hidden(string(role), id)
	}
	return rt, nil
}

// keep returns the items sees admits; never nil, so that a JSON list is [] rather than null.
func keep[T any](all []T, sees func(T) bool) []T {
	out := []T{}
	for _, x := range all {
		if sees(x) {
			out = append(out, x)
		}
	}
	return out
}

// visibleRetailers lists the retailers p may see.
func (d *Dashboard) visibleRetailers(ctx context.Context, p access.Principal) ([]retailer.Retailer, error) {
	all, err := d.Shops.Retailers(ctx)
	return keep(all, func(rt retailer.Retailer) bool { return p.SeesRetailer(rt.ID) }), err
}

// visibleOperators lists the operators p may see.
func (d *Dashboard) visibleOperators(ctx context.Context, p access.Principal) ([]operator.Operator, error) {
	all, err := d.Operators.Operators(ctx)
	return keep(all, func(o operator.Operator) bool { return p.SeesOperator(o.ID) }), err
}

func (d *Dashboard) retailersPage(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	rs, err := d.visibleRetailers(r.Context(), p)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	d.render(w, r, http.StatusOK, "retailers", "Retailers", map[string]any{"Retailers": rs, "CanCreate": p.Can(access.ManageRetailers)})
}

func (d *Dashboard) createRetailer(w http.ResponseWriter, r *http.Request) {
	rt := retailer.Retailer{ID: r.PostFormValue("id"), Name: r.PostFormValue("name")}
	if err := d.Shops.CreateRetailer(r.Context(), rt); err != nil {
		d.fail(w, r, false, err)
		return
	}
	redirect(w, r, "/ui/retailers/"+rt.ID, "retailer "+rt.ID+" created")
}

func (d *Dashboard) retailerPage(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	rt, err := d.visibleRetailer(r.Context(), p, chi.URLParam(r, "id"))
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	ts, err := d.Shops.Terminals(r.Context(), rt.ID)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	vs, err := d.Shops.Vendors(r.Context(), rt.ID)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	d.render(w, r, http.StatusOK, "retailer", "Retailer "+rt.ID, map[string]any{"Retailer": rt, "Terminals": ts, "Vendors": vs,
		"CanManage": p.Can(access.ManageTerminals)})
}

func (d *Dashboard) addTerminal(w http.ResponseWriter, r *http.Request) {
	rt, err := d.visibleRetailer(r.Context(), principal(r), chi.URLParam(r, "id"))
	if err == nil {
		err = d.Shops.AddTerminal(r.Context(), retailer.Terminal{ID: r.PostFormValue("id"), Retailer: rt.ID, Name: r.PostFormValue("name")})
	}
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	redirect(w, r, "/ui/retailers/"+rt.ID, "terminal "+r.PostFormValue("id")+" added")
}

func (d *Dashboard) addVendor(w http.ResponseWriter, r *http.Request) {
	rt, err := d.visibleRetailer(r.Context(), principal(r), chi.URLParam(r, "id"))
	if err == nil {
		err = d.Shops.AddVendor(r.Context(), retailer.Vendor{ID: r.PostFormValue("id"), Retailer: rt.ID, Name: r.PostFormValue("name")})
	}
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	redirect(w, r, "/ui/retailers/"+rt.ID, "vendor card "+r.PostFormValue("id")+" added")
}

func (d *Dashboard) terminalPage(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	id := chi.URLParam(r, "id")
	if _, err := d.visibleParty(r.Context(), p, pki.RoleTerminal, id); err != nil {
		d.fail(w, r, false, err)
		return
	}
	t, err := d.Shops.Terminal(r.Context(), id)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	levels, err := d.Shops.Levels(r.Context(), id)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	certs, err := d.PKI.List(r.Context(), pki.RoleTerminal, id)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	q, err := d.Vault.Quarantined(r.Context(), "", id)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	d.render(w, r, http.StatusOK, "terminal", "Terminal "+id, map[string]any{"Terminal": t, "Levels": levels, "Certs": certs,
		"Quarantined": q, "CanManage": p.Can(access.ManageTerminals)})
}

func (d *Dashboard) setLevel(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	_, err := d.visibleParty(r.Context(), principal(r), pki.RoleTerminal, id)
	if err == nil {
		minL, err1 := strconv.Atoi(r.PostFormValue("min"))
		maxL, err2 := strconv.Atoi(r.PostFormValue("max"))
		if err1 != nil || err2 != nil {
			err = evoucher.Errorf(evoucher.KindInvalid, "bad_level", "min and max must be whole numbers")
		} else {
			err = d.Shops.SetLevel(r.Context(), retailer.Level{Terminal: id, Operator: r.PostFormValue("operator"),
				Product: r.PostFormValue("product"), Min: minL, Max: maxL, AutoReorder: r.PostFormValue("auto") != ""})
		}
	}
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	redirect(w, r, "/ui/terminals/"+id, "levels set")
}

// issueCode issues a one-time enrolment code and shows it once; it is never stored in clear.
func (d *Dashboard) issueCode(role pki.Role) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		rt, err := d.visibleParty(r.Context(), principal(r), role, id)
		if err != nil {
			d.fail(w, r, false, err)
			return
		}
		code, err := d.PKI.IssueCode(r.Context(), role, id)
		if err != nil {
			d.fail(w, r, false, err)
			return
		}
		d.Logger.InfoContext(r.Context(), "enrolment code issued", "role", string(role), "entity", id, "by", "dashboard user "+principal(r).Name)
		d.render(w, r, http.StatusOK, "code", "Enrolment code", map[string]any{"Role": role, "Entity": id, "Retailer": rt,
			"Code": code.Code.Reveal(), "Expires": code.ExpiresAt})
	}
}

// revoke revokes every current certificate of a terminal or vendor card; a terminal's unsold
// stock is quarantined with it (codevault.OnRevoke) and listed on its page for the operator.
func (d *Dashboard) revoke(role pki.Role) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		rt, err := d.visibleParty(r.Context(), principal(r), role, id)
		if err != nil {
			d.fail(w, r, false, err)
			return
		}
		reason := r.PostFormValue("reason")
		if reason == "" {
			reason = "keyCompromise"
		}
		certs, err := d.PKI.List(r.Context(), role, id)
		if err != nil {
			d.fail(w, r, false, err)
			return
		}
		n := 0
		for _, c := range certs {
			if c.RevokedAt != nil {
				continue
			}
			if _, err := d.PKI.Revoke(r.Context(), c.Serial, reason); err != nil {
				d.fail(w, r, false, err)
				return
			}
			n++
		}
		if n == 0 {
			d.fail(w, r, false, evoucher.Errorf(evoucher.KindConflict, "nothing_to_revoke", "%s %s holds no current certificate: nothing to revoke", role, id))
			return
		}
		d.Logger.InfoContext(r.Context(), "revoked from the dashboard", "role", string(role), "entity", id, "reason", reason, "by", principal(r).Name)
		where := "/ui/retailers/" + rt
		if role == pki.RoleTerminal {
			where = "/ui/terminals/" + id
		}
		redirect(w, r, where, strconv.Itoa(n)+" certificate(s) of "+string(role)+" "+id+" revoked")
	}
}

func (d *Dashboard) operatorsPage(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	os, err := d.visibleOperators(r.Context(), p)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	d.render(w, r, http.StatusOK, "operators", "Operators", map[string]any{"Operators": os, "CanCreate": p.Can(access.ManageOperators)})
}

func (d *Dashboard) createOperator(w http.ResponseWriter, r *http.Request) {
	o := operator.Operator{ID: r.PostFormValue("id"), Name: r.PostFormValue("name")}
	if err := d.Operators.CreateOperator(r.Context(), o); err != nil {
		d.fail(w, r, false, err)
		return
	}
	redirect(w, r, "/ui/operators/"+o.ID, "operator "+o.ID+" created")
}

func (d *Dashboard) operatorPage(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	id := chi.URLParam(r, "id")
	if !p.SeesOperator(id) {
		d.fail(w, r, false, hidden("operator", id))
		return
	}
	ps, err := d.Operators.Products(r.Context(), id)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	stock, err := d.Vault.StockOverview(r.Context(), codevault.Scope{Operator: id})
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	d.render(w, r, http.StatusOK, "operator", "Operator "+id, map[string]any{"ID": id, "Products": ps, "Stock": stock,
		"CanCreate": p.Can(access.ManageOperators)})
}

func (d *Dashboard) createProduct(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	num := func(k string) int64 { n, _ := strconv.ParseInt(r.PostFormValue(k), 10, 64); return n }
	p := operator.Product{Operator: id, Code: r.PostFormValue("code"), Name: r.PostFormValue("name"), FaceValue: num("face_value"),
		Currency: r.PostFormValue("currency"), RefillTemplate: r.PostFormValue("refill"), SerialPattern: r.PostFormValue("serial_pattern"),
		PINPattern: r.PostFormValue("pin_pattern"), ReorderLevel: int(num("reorder_level")), ReorderQuantity: int(num("reorder_quantity"))}
	if err := d.Operators.CreateProduct(r.Context(), p); err != nil {
		d.fail(w, r, false, err)
		return
	}
	redirect(w, r, "/ui/operators/"+id, "product "+p.Code+" created")
}
