package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/app"
	"github.com/samizdat-im/samizdat/internal/mesh"
)

// meshFlags are `up`'s mesh mode flags (docs/MESH.md).
type meshFlags struct {
	mesh, mdns     bool
	maxItems, hops int
	maxBytes       string
	syncInterval   time.Duration
}

func addMeshFlags(c *cobra.Command, f *meshFlags) {
	c.Flags().BoolVar(&f.mesh, "mesh", true, "mesh mode: carry envelopes for nearby peers and have yours carried when a contact is unreachable")
	c.Flags().BoolVar(&f.mdns, "mdns", true, "find samizdat peers on the local network with mDNS (only when listening beyond loopback, see --listen)")
	c.Flags().IntVar(&f.maxItems, "mesh-max-envelopes", mesh.DefaultMaxItems, "most envelopes carried at once")
	c.Flags().StringVar(&f.maxBytes, "mesh-max-bytes", "64MiB", "most envelope bytes carried at once, e.g. 64MiB or bytes")
	c.Flags().IntVar(&f.hops, "mesh-hops", mesh.DefaultHops, "how many carriers your envelopes pass through on average (1: exactly one)")
	c.Flags().DurationVar(&f.syncInterval, "mesh-sync-interval", mesh.DefaultSyncInterval, "how often nearby peers are synced with when nothing changed")
}

func (f *meshFlags) apply(o *app.Options) error {
	o.Mesh, o.MDNS = f.mesh, f.mdns
	if !f.mesh {
		return nil
	}
	b, err := parseSize(f.maxBytes)
	if err != nil {
		return fmt.Errorf("--mesh-max-bytes: %w", err)
	}
	if f.hops < 1 || f.hops > mesh.MaxHops {
		return fmt.Errorf("--mesh-hops %d: want 1 to %d", f.hops, mesh.MaxHops)
	}
	if f.maxItems < 1 {
		return fmt.Errorf("--mesh-max-envelopes %d: want at least 1", f.maxItems)
	}
	if f.syncInterval <= 0 {
		return fmt.Errorf("--mesh-sync-interval %s: want a positive duration", f.syncInterval)
	}
	o.MeshConfig = mesh.Config{MaxItems: f.maxItems, MaxBytes: int(b), Hops: f.hops, SyncInterval: f.syncInterval}
	return nil
}

// printMeshStatus adds mesh mode to `samizdat status`.
func printMeshStatus(g *globals, m *apiclient.MeshStatus) {
	if m == nil {
		fmt.Fprintln(g.stdout, "mesh mode:  off")
		return
	}
	lan := "no LAN discovery"
	if m.MDNS {
		lan = "LAN discovery (mDNS) on"
	}
	fmt.Fprintf(g.stdout, "mesh mode:  on, %s, %d mesh peers met\n", lan, m.Peers)
	fmt.Fprintf(g.stdout, "carrying:   %d envelopes for others (%d bytes held), %d of ours waiting\n", m.Carried, m.CarriedBytes, m.Own)
	fmt.Fprintf(g.stdout, "mesh:       %d received for us, %d handed to mailbox hosts, %d syncs\n", m.Delivered, m.HandedToHosts, m.Syncs)
}
