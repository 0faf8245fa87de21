package dashboard

// LoginClients returns how many client addresses the login limiter remembers. Tests only.
func LoginClients(d *Dashboard) int { return d.logins.len() }
