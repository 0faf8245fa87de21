package dashboard_test

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/api/dashboard"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/ledger"
	"github.com/evoucher/evoucher/operator"
	"github.com/evoucher/evoucher/retailer"
)

// TestJSONShape: every struct the session JSON API answers with, and every struct inside it,
// names each field in snake_case with a json tag, so that the API does not change when a Go
// field is renamed.
func TestJSONShape(t *testing.T) {
	answers := []any{
		dashboard.Me{}, dashboard.Overview{}, dashboard.AuditInfo{}, dashboard.StatementView{}, api.ErrorBody{},
		[]codevault.TerminalStock{}, []codevault.Alarm{}, []codevault.DaySales{},
		[]codevault.BatchEntry{}, []codevault.ShipmentEntry{}, []codevault.SaleEntry{}, []codevault.OrderEntry{}, []codevault.RefusalEntry{},
		[]retailer.Retailer{}, []retailer.Terminal{}, []operator.Operator{}, []operator.Product{},
		[]ledger.Balance{}, ledger.AccountPage{}, []ledger.TopUp{}, ledger.Terms{}, []ledger.Rate{}, []ledger.SalesTotal{},
		[]ledger.Statement{}, ledger.Clearing{},
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, path string) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Array || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || seen[ty] || ty == reflect.TypeFor[time.Time]() {
			return
		}
		seen[ty] = true
		if _, ok := reflect.New(ty).Interface().(interface{ MarshalJSON() ([]byte, error) }); ok {
			return
		}
		for i := range ty.NumField() {
			f := ty.Field(i)
			if !f.IsExported() {
				continue
			}
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == "-" {
				continue
			}
			if f.Anonymous && tag == "" {
				walk(f.Type, path)
				continue
			}
			if !snake.MatchString(tag) {
				t.Errorf("%s: field %s of %s has json name %q, not snake_case", path, f.Name, ty, tag)
			}
			walk(f.Type, path+"."+f.Name)
		}
	}
	for _, a := range answers {
		walk(reflect.TypeOf(a), reflect.TypeOf(a).String())
	}
}
