package web

import (
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/model"
)

//go:embed templates/*.html
var files embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"join": strings.Join,
}).ParseFS(files, "templates/*.html"))

const cookieName = "peerboot_admin"

// maxMachinesShown bounds the machines table; the API lists all.
const maxMachinesShown = 500

// Web serves the pages.
type Web struct {
	srv    *api.Server
	secure bool
}

// New returns the web UI for srv; secure marks the cookie Secure (HTTPS).
func New(srv *api.Server, secure bool) *Web { return &Web{srv: srv, secure: secure} }

// Register adds the pages to mux.
func (wb *Web) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusSeeOther) })
	mux.HandleFunc("GET /ui/", wb.dashboard)
	mux.HandleFunc("GET /ui/login", wb.loginPage)
	mux.HandleFunc("POST /ui/login", wb.login)
	mux.HandleFunc("POST /ui/logout", wb.logout)
	mux.HandleFunc("POST /ui/machines/{id}/clear", wb.clear)
}

func (wb *Web) authed(r *http.Request) bool {
	c, err := r.Cookie(cookieName)
	return err == nil && wb.srv.IsAdminToken(c.Value)
}

// sameOrigin rejects cross-site form posts (with the SameSite cookie this
// stops CSRF).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return r.Header.Get("Sec-Fetch-Site") != "cross-site"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (wb *Web) render(w http.ResponseWriter, name string, status int, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		http.Error(w, "template: "+err.Error(), 500)
	}
}

func (wb *Web) loginPage(w http.ResponseWriter, r *http.Request) {
	wb.render(w, "login.html", 200, map[string]string{"Error": r.URL.Query().Get("error")})
}

func (wb *Web) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if !sameOrigin(r) || r.ParseForm() != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	if !wb.srv.IsAdminToken(tok) {
		wb.render(w, "login.html", http.StatusUnauthorized, map[string]string{"Error": "wrong admin token"})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: tok, Path: "/", HttpOnly: true, Secure: wb.secure, SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (wb *Web) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

type machineRow struct {
	model.Machine
	Deployments []model.Deployment
	Consumed    []model.Consumption
}

type dashboard struct {
	Subnets       []api.SubnetSummary
	Machines      []machineRow
	MachinesTotal int
	Truncated     bool
	Deployments   []model.Deployment
	Unknown       []model.Deployment
	Images        []model.Image
	Boots         []model.Event
	Ignored       []string
	Flash         string
	Now           time.Time
}

func (wb *Web) dashboard(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/ui/" {
		http.NotFound(w, r)
		return
	}
	if !wb.authed(r) {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	st := wb.srv.Store()
	var d dashboard
	var err error
	fail := func(err error) { http.Error(w, "central: "+err.Error(), http.StatusInternalServerError) }
	if d.Subnets, err = wb.srv.Subnets(r); err != nil {
		fail(err)
		return
	}
	machines, err := st.ListMachines(ctx)
	if err != nil {
		fail(err)
		return
	}
	if d.Deployments, err = st.ListDeployments(ctx); err != nil {
		fail(err)
		return
	}
	cons, err := st.ListConsumptions(ctx)
	if err != nil {
		fail(err)
		return
	}
	if d.Images, err = st.ListImages(ctx); err != nil {
		fail(err)
		return
	}
	if d.Boots, err = st.RecentEvents(ctx, model.EventPXEBoot, 50); err != nil {
		fail(err)
		return
	}
	if d.Ignored, err = st.ListIgnoredMACs(ctx); err != nil {
		fail(err)
		return
	}
	byMachine := map[string][]model.Deployment{}
	for _, dep := range d.Deployments {
		if dep.UnknownComputers {
			d.Unknown = append(d.Unknown, dep)
		} else {
			byMachine[dep.MachineID] = append(byMachine[dep.MachineID], dep)
		}
	}
	consBy := map[string][]model.Consumption{}
	for _, c := range cons {
		consBy[c.ClientKey] = append(consBy[c.ClientKey], c)
	}
	// Machines with deployments first, so the interesting ones are shown.
	sort.SliceStable(machines, func(i, j int) bool {
		return len(byMachine[machines[i].ID]) > 0 && len(byMachine[machines[j].ID]) == 0
	})
	d.MachinesTotal = len(machines)
	if len(machines) > maxMachinesShown {
		machines, d.Truncated = machines[:maxMachinesShown], true
	}
	for _, m := range machines {
		d.Machines = append(d.Machines, machineRow{Machine: m, Deployments: byMachine[m.ID], Consumed: consBy["m:"+m.ID]})
	}
	d.Flash = r.URL.Query().Get("flash")
	d.Now = time.Now()
	wb.render(w, "dashboard.html", 200, d)
}

func (wb *Web) clear(w http.ResponseWriter, r *http.Request) {
	if !wb.authed(r) {
		http.Error(w, "log in first", http.StatusUnauthorized)
		return
	}
	if !sameOrigin(r) {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	res, err := wb.srv.ClearMachine(r, r.PathValue("id"))
	if err != nil {
		http.Error(w, "clear: "+err.Error(), http.StatusNotFound)
		return
	}
	flash := "cleared " + res.ClientKey
	if res.Cleared == 0 {
		flash = "nothing to clear for " + res.ClientKey
	}
	http.Redirect(w, r, "/ui/?flash="+url.QueryEscape(flash), http.StatusSeeOther)
}
