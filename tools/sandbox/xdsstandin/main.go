// Copyright: (c) 2026, meshfed.istio contributors
// GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

// Command xds-standin stands in for Envoy beside an Envoy-less pilot-agent (DISABLE_ENVOY=true)
// in the meshfed.istio sandbox, where Envoy can be neither built nor downloaded.
//
// A VM's WorkloadEntry is created by istiod (autoregistration) when a proxy opens an xDS stream
// whose node metadata names a WorkloadGroup (AUTO_REGISTER_GROUP), over an mTLS connection that
// proves the workload's identity. pilot-agent makes that connection for its proxy: it serves the
// xDS socket Envoy would use (./etc/istio/proxy/XDS relative to its working directory) and opens
// one upstream stream to istiod per downstream stream, with the workload certificate it got from
// istiod's CA. Without Envoy nobody opens a downstream stream, so nothing is registered.
//
// This program is that downstream client. It reads the gRPC bootstrap file pilot-agent writes
// (GRPC_XDS_BOOTSTRAP, by default ./etc/istio/proxy/grpc-bootstrap.json): the node id
// (sidecar~<ip>~<name>.<namespace>~<namespace>.svc.cluster.local) and the node metadata the agent
// built from its environment, ISTIO_META_* included (AUTO_REGISTER_GROUP, NETWORK, CLUSTER_ID,
// NAMESPACE, ...), and the address of the xDS socket. It then keeps one ADS stream open through
// that socket, subscribing to what Envoy asks for first (clusters and listeners) and ACKing every
// response, reconnecting with a backoff when the stream ends, as Envoy would.
//
// The agent's bootstrap marks the node GENERATOR=grpc (it is meant for proxyless gRPC clients);
// by default this program drops that key so that istiod treats the node like the Envoy sidecar it
// stands in for (-keep-generator keeps it; autoregistration does not depend on it).
//
// It exits non-zero, with a line saying why, when the bootstrap or the socket does not appear
// within -wait, or when no stream could be opened for -give-up; it exits 0 on SIGTERM or SIGINT.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

const (
	clusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
)

var shortType = map[string]string{clusterType: "CDS", listenerType: "LDS"}

type bootstrap struct {
	XDSServers []struct {
		ServerURI string `json:"server_uri"`
	} `json:"xds_servers"`
	Node json.RawMessage `json:"node"`
}

func defaultBootstrap() string {
	if p := os.Getenv("GRPC_XDS_BOOTSTRAP"); p != "" {
		return p
	}
	return "./etc/istio/proxy/grpc-bootstrap.json"
}

// waitFor polls until check returns true, saying every 10 s what it waits for; false after timeout.
func waitFor(ctx context.Context, what string, timeout time.Duration, check func() bool) bool {
	start := time.Now()
	next := 10 * time.Second
	for !check() {
		if time.Since(start) >= timeout {
			return false
		}
		if time.Since(start) >= next {
			log.Printf("waiting for %s (%.0fs so far, up to %s)", what, time.Since(start).Seconds(), timeout)
			next += 10 * time.Second
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
	return true
}

// readBootstrap returns the node and the xDS socket path of the agent's gRPC bootstrap.
func readBootstrap(path string, keepGenerator bool) (*core.Node, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	var b bootstrap
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, "", fmt.Errorf("%s is not a gRPC bootstrap: %v", path, err)
	}
	if len(b.XDSServers) == 0 || b.XDSServers[0].ServerURI == "" {
		return nil, "", fmt.Errorf("%s names no xds_servers[0].server_uri", path)
	}
	node := &core.Node{}
	// the agent writes the node with encoding/json: protojson reads its fields, unknown ones are dropped
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b.Node, node); err != nil {
		return nil, "", fmt.Errorf("%s: node: %v", path, err)
	}
	if node.GetId() == "" {
		return nil, "", fmt.Errorf("%s: the node has no id", path)
	}
	if !keepGenerator && node.GetMetadata() != nil {
		delete(node.Metadata.Fields, "GENERATOR")
	}
	return node, socketPath(node, b.XDSServers[0].ServerURI), nil
}

// socketPath is where the agent serves its xDS socket: <PROXY_CONFIG.configPath>/XDS (the agent's
// XdsUdsPath), relative to the agent's working directory when the config path is (the default
// "./etc/istio/proxy"). The node metadata carries the config path; the bootstrap's server_uri does
// too, but as "unix:///" + the path, so a relative path reads as an absolute one there
// ("unix:///etc/istio/proxy/XDS"): it is used only when the metadata has no config path. This
// program runs in the agent's working directory (with the package: /, where both readings agree).
func socketPath(node *core.Node, uri string) string {
	if pc := node.GetMetadata().GetFields()["PROXY_CONFIG"].GetStructValue(); pc != nil {
		if dir := pc.GetFields()["configPath"].GetStringValue(); dir != "" {
			return filepath.Join(dir, "XDS")
		}
	}
	p := strings.TrimPrefix(uri, "unix://")
	for strings.HasPrefix(p, "//") {
		p = p[1:]
	}
	return p
}

func metaString(node *core.Node, key string) string {
	if v, ok := node.GetMetadata().GetFields()[key]; ok {
		return v.GetStringValue()
	}
	return ""
}

// stream opens one ADS stream through the socket and keeps it until it ends; opened tells whether
// the first response arrived (the stream reached istiod).
func stream(ctx context.Context, socket string, node *core.Node, types []string) (opened bool, err error) {
	conn, err := grpc.NewClient("passthrough:///agent-xds",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}))
	if err != nil {
		return false, err
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ads, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		return false, err
	}
	for _, t := range types {
		if err := ads.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: t}); err != nil {
			return false, fmt.Errorf("sending the %s request: %v", shortType[t], err)
		}
	}
	for {
		resp, err := ads.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return opened, nil
			}
			return opened, err
		}
		if !opened {
			log.Printf("xDS stream open through %s: first response from istiod (node %s)", socket, node.GetId())
			opened = true
		}
		log.Printf("received %s version %q: %d resource(s); ACK", shortType[resp.GetTypeUrl()], resp.GetVersionInfo(), len(resp.GetResources()))
		ack := &discovery.DiscoveryRequest{Node: node, TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
		if err := ads.Send(ack); err != nil {
			return opened, fmt.Errorf("sending the ACK: %v", err)
		}
	}
}

func main() {
	log.SetFlags(log.LstdFlags | log.LUTC)
	log.SetPrefix("xds-standin: ")
	bootstrapPath := flag.String("bootstrap", defaultBootstrap(), "the agent's gRPC bootstrap file (default: $GRPC_XDS_BOOTSTRAP, else the agent's default)")
	socketFlag := flag.String("xds-socket", "", "the agent's xDS socket (default: the bootstrap's xds_servers[0].server_uri)")
	wait := flag.Duration("wait", 2*time.Minute, "how long to wait for the bootstrap file and the socket to appear")
	giveUp := flag.Duration("give-up", 2*time.Minute, "exit non-zero when no stream reached istiod for this long")
	keepGenerator := flag.Bool("keep-generator", false, "keep the bootstrap's GENERATOR=grpc node metadata (default: drop it, as Envoy's node has none)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if !waitFor(ctx, "the agent's gRPC bootstrap "+*bootstrapPath, *wait, func() bool {
		_, err := os.Stat(*bootstrapPath)
		return err == nil
	}) {
		if ctx.Err() != nil {
			return
		}
		log.Fatalf("no gRPC bootstrap at %s after %s: is pilot-agent running in this working directory "+
			"(it writes the file at start-up; GRPC_XDS_BOOTSTRAP moves it)?", *bootstrapPath, *wait)
	}
	node, socket, err := readBootstrap(*bootstrapPath, *keepGenerator)
	if err != nil {
		log.Fatalf("cannot use the agent's bootstrap: %v", err)
	}
	if *socketFlag != "" {
		socket = *socketFlag
	}
	log.Printf("node %s (AUTO_REGISTER_GROUP=%q NAMESPACE=%q NETWORK=%q CLUSTER_ID=%q), xDS socket %s",
		node.GetId(), metaString(node, "AUTO_REGISTER_GROUP"), metaString(node, "NAMESPACE"),
		metaString(node, "NETWORK"), metaString(node, "CLUSTER_ID"), socket)
	if !waitFor(ctx, "the agent's xDS socket "+socket, *wait, func() bool {
		fi, err := os.Stat(socket)
		return err == nil && fi.Mode()&os.ModeSocket != 0
	}) {
		if ctx.Err() != nil {
			return
		}
		log.Fatalf("no xDS socket at %s after %s: pilot-agent did not start its xDS proxy", socket, *wait)
	}

	types := []string{clusterType, listenerType}
	backoff := time.Second
	lastOpen := time.Now()
	for {
		opened, err := stream(ctx, socket, node, types)
		if ctx.Err() != nil {
			log.Printf("stopping (signal): closing the xDS stream")
			return
		}
		if opened {
			lastOpen, backoff = time.Now(), time.Second
		}
		if err == nil {
			err = errors.New("closed by the agent")
		}
		if time.Since(lastOpen) >= *giveUp {
			log.Fatalf("giving up: no xDS stream through %s reached istiod for %s; last error: %v", socket, *giveUp, err)
		}
		log.Printf("xDS stream through %s ended: %v; reconnecting in %s", socket, err, backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 10*time.Second {
			backoff *= 2
		}
	}
}
