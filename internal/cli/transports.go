package cli

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/app"
)

// transportFlags are the `samizdat up` flags for censored networks.
type transportFlags struct {
	tlsName, socks5 string
	ech             bool
	echName         string
	pt              []string
	bridges         []string
	servePT         []string
	stun            []string
	retryMax        time.Duration
}

func addTransportFlags(c *cobra.Command, f *transportFlags) {
	addServeTransportFlags(c, f)
	c.Flags().StringVar(&f.socks5, "socks5", "", "dial every peer through this SOCKS5 proxy (Tor, a VPN client…), as HOST:PORT; only TCP addresses are then used")
	c.Flags().StringArrayVar(&f.bridges, "bridge", nil, `a bridge to dial through its pluggable transport: "obfs4 IP:PORT PEERID cert=... iat-mode=0" (repeatable)`)
	c.Flags().DurationVar(&f.retryMax, "retry-max", 0, "longest wait between two delivery attempts of a message (default 5m)")
}

// addServeTransportFlags adds the flags of what a node serves (relays too).
func addServeTransportFlags(c *cobra.Command, f *transportFlags) {
	c.Flags().StringVar(&f.tlsName, "tls-name", "", "server name shown on /tls/ws (HTTPS-looking) listeners and sent as SNI; never looked up (default: a common site name picked once and kept in the profile)")
	c.Flags().BoolVar(&f.ech, "ech", false, "accept Encrypted Client Hello on /tls/ws listeners and advertise its config: peers' ClientHellos then show only a cover name, the --tls-name travels encrypted (off by default)")
	c.Flags().StringVar(&f.echName, "ech-name", "", "the cover name of --ech, shown in the clear (default: cloudflare-ech.com, the name every ECH connection to Cloudflare shows; kept in the profile)")
	c.Flags().StringArrayVar(&f.pt, "pt", nil, "a pluggable transport binary, as METHOD=PATH, e.g. obfs4=/usr/bin/obfs4proxy (repeatable)")
	c.Flags().StringArrayVar(&f.stun, "stun", nil, "a STUN server for WebRTC (/udp/PORT/webrtc listeners and dials), as IP:PORT; never looked up (repeatable; default: none)")
	c.Flags().StringArrayVar(&f.servePT, "serve-pt", nil, "serve a pluggable transport as METHOD@IP:PORT, e.g. obfs4@0.0.0.0:8443 (needs --pt and a TCP --listen; prints the bridge line)")
}

// apply puts the flags into the node options.
func (f *transportFlags) apply(o *app.Options) error {
	o.Transports = app.TransportOptions{TLSName: f.tlsName, SOCKS5: f.socks5, Bridges: f.bridges, ServePT: f.servePT, ECH: f.ech, ECHName: f.echName, STUN: f.stun}
	if f.echName != "" && !f.ech {
		return usageError{fmt.Errorf("--ech-name needs --ech")}
	}
	for _, s := range f.stun {
		if ap, err := netip.ParseAddrPort(s); err != nil || !ap.IsValid() {
			return usageError{fmt.Errorf("--stun %q: give IP:PORT (a STUN server is never looked up by name)", s)}
		}
	}
	for _, p := range f.pt {
		method, bin, ok := strings.Cut(p, "=")
		if !ok || method == "" || bin == "" {
			return usageError{fmt.Errorf("--pt %q: give METHOD=PATH, e.g. obfs4=/usr/bin/obfs4proxy", p)}
		}
		if o.Transports.PT == nil {
			o.Transports.PT = map[string]string{}
		}
		o.Transports.PT[method] = bin
	}
	if f.retryMax < 0 {
		return usageError{fmt.Errorf("--retry-max %v: must not be negative", f.retryMax)}
	}
	o.Messenger.RetryMax = f.retryMax
	return nil
}

// printNetStatus prints the transports and bridges of a status.
func printNetStatus(w io.Writer, st apiclient.Status) {
	if !st.Running {
		return
	}
	var parts []string
	for _, t := range st.Transports {
		switch {
		case t.Open > 0:
			parts = append(parts, fmt.Sprintf("%s (%d open)", t.Name, t.Open))
		case !t.LastOK.IsZero():
			parts = append(parts, fmt.Sprintf("%s (worked %s ago)", t.Name, time.Since(t.LastOK).Round(time.Second)))
		}
	}
	if len(parts) == 0 {
		parts = []string{"none working yet"}
	}
	fmt.Fprintf(w, "transports: %s\n", strings.Join(parts, ", "))
	if len(st.TransportOrder) > 0 {
		fmt.Fprintf(w, "dial first: %s (what worked before)\n", strings.Join(st.TransportOrder, ", "))
	}
	fmt.Fprintf(w, "peer cache: %d entry points\n", st.PeerCache)
	for _, b := range st.Bridges {
		fmt.Fprintf(w, "bridge:     %s\n", b)
	}
}
