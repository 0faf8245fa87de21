package access

import (
	"slices"

	"github.com/evoucher/evoucher"
)

// Role is what a dashboard user may see and do.
type Role string

// The roles.
const (
	// RoleAdmin sees and does everything, operators and products included.
	RoleAdmin Role = "admin"
	// RoleManager runs the network: every retailer and operator, alarms, terminals, levels, and
	// the money: top-ups, retailers' terms, commissions, margins, statements.
	RoleManager Role = "manager"
	// RoleRetailerManager sees only its retailer: its terminals, vendor cards, shipments and
	// sales, its account and statements; it sets its terminals' levels, issues their enrolment
	// codes and revokes them.
	RoleRetailerManager Role = "retailer_manager"
	// RoleOperatorUser sees only its operator: its products, batches, purchase orders, and the
	// stock and sales of its products, what the platform owes it and its statements.
	RoleOperatorUser Role = "operator_user"
	// RoleAuditor sees everything a manager sees and changes nothing.
	RoleAuditor Role = "auditor"
)

// Roles lists every role.
func Roles() []Role {
	return []Role{RoleAdmin, RoleManager, RoleRetailerManager, RoleOperatorUser, RoleAuditor}
}

// ParseRole returns the role named s, or invalid ("bad_role").
func ParseRole(s string) (Role, error) {
	if !slices.Contains(Roles(), Role(s)) {
		return "", evoucher.Errorf(evoucher.KindInvalid, "bad_role",
			"unknown role %q: use admin, manager, retailer_manager, operator_user or auditor", s)
	}
	return Role(s), nil
}

// Permission is one thing a role may do.
type Permission string

// The permissions. Scoped roles hold some of them for their own retailer or operator only;
// Principal.Scope says which.
const (
	// SeeNetwork: network-wide views (vault stock, refusals, the audit log, every alarm).
	SeeNetwork Permission = "see_network"
	// SeeRetailers: retailer, terminal and vendor pages, shipments and sales.
	SeeRetailers Permission = "see_retailers"
	// SeeOperators: operator and product pages, batches and purchase orders.
	SeeOperators Permission = "see_operators"
	// SeeAlarms: the alarm register (scoped roles: alarms about what they own).
	SeeAlarms Permission = "see_alarms"
	// HandleAlarms: acknowledge and resolve alarms.
	HandleAlarms Permission = "handle_alarms"
	// ManageRetailers: create retailers.
	ManageRetailers Permission = "manage_retailers"
	// ManageTerminals: add terminals and vendor cards, set levels, issue enrolment codes, revoke.
	ManageTerminals Permission = "manage_terminals"
	// ManageOperators: create operators and products.
	ManageOperators Permission = "manage_operators"
	// SeeMoney: balances, account entries and statements (scoped roles: their own account and
	// statements only; the platform's accounts and the clearing need SeeNetwork too).
	SeeMoney Permission = "see_money"
	// ManageMoney: record top-ups, set retailers' terms, commissions and margins, make statements.
	ManageMoney Permission = "manage_money"
)

var grants = map[Role][]Permission{
	RoleAdmin: {SeeNetwork, SeeRetailers, SeeOperators, SeeAlarms, HandleAlarms, ManageRetailers, ManageTerminals, ManageOperators,
		SeeMoney, ManageMoney},
	RoleManager:         {SeeNetwork, SeeRetailers, SeeOperators, SeeAlarms, HandleAlarms, ManageRetailers, ManageTerminals, SeeMoney, ManageMoney},
	RoleAuditor:         {SeeNetwork, SeeRetailers, SeeOperators, SeeAlarms, SeeMoney},
	RoleRetailerManager: {SeeRetailers, SeeAlarms, ManageTerminals, SeeMoney},
	RoleOperatorUser:    {SeeOperators, SeeAlarms, SeeMoney},
}

// Principal is the user behind a request.
type Principal struct {
	UserID   int64
	Name     string
	Role     Role
	Retailer string // set for RoleRetailerManager only
	Operator string // set for RoleOperatorUser only
}

// Can reports whether the principal holds permission p (for its scope).
func (p Principal) Can(perm Permission) bool { return slices.Contains(grants[p.Role], perm) }

// SeesRetailer reports whether the principal may see retailer id.
func (p Principal) SeesRetailer(id string) bool {
	return p.Can(SeeRetailers) && (p.Retailer == "" || p.Retailer == id) && p.Role != RoleOperatorUser
}

// SeesOperator reports whether the principal may see operator id.
func (p Principal) SeesOperator(id string) bool {
	return p.Can(SeeOperators) && (p.Operator == "" || p.Operator == id) && p.Role != RoleRetailerManager
}

// Require returns forbidden ("not_allowed") unless the principal holds perm.
func (p Principal) Require(perm Permission) error {
	if p.Can(perm) {
		return nil
	}
	return evoucher.Errorf(evoucher.KindForbidden, "not_allowed", "user %s (%s) may not do this (%s)", p.Name, p.Role, perm)
}
