// Package retailer owns the retailers of the network, their POS terminals, the vendor cards
// of their salesmen and the stock levels the center keeps each terminal between. It answers
// which certificate a terminal or an active vendor card holds, so shipments can be wrapped to
// them, but the certificates themselves are pki's. It never holds a key or a code.
package retailer
