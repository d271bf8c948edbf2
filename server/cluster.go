package server

import (
	"net/http"
	"time"
)

// clusterDoc is GET /v1/cluster (API.md "Cluster").
type clusterDoc struct {
	Store string        `json:"store"`
	Node  string        `json:"node"`
	Nodes []clusterNode `json:"nodes"`
}

type clusterNode struct {
	Name       string            `json:"name"`
	Address    string            `json:"address"`
	StartedAt  time.Time         `json:"started_at"`
	LastSeenAt time.Time         `json:"last_seen_at"`
	Version    string            `json:"version"`
	Sources    int               `json:"sources"`
	Routes     map[string]string `json:"routes,omitempty"`
}

// GET /v1/cluster (admin): the store backend and the live nodes, each with the trigger
// sources it polls now and the route it serves for each connector. A node that stops
// heartbeating for 10 s leaves the list. "node" names the node that answered.
func (s *Server) getCluster(w http.ResponseWriter, r *http.Request) error {
	nodes, err := s.reg.Nodes(r.Context())
	if err != nil {
		return err
	}
	doc := clusterDoc{Store: s.backend, Node: s.reg.NodeName(), Nodes: make([]clusterNode, 0, len(nodes))}
	for _, n := range nodes {
		doc.Nodes = append(doc.Nodes, clusterNode{Name: n.Name, Address: n.Address, StartedAt: n.StartedAt.UTC(),
			LastSeenAt: n.LastSeenAt.UTC(), Version: n.Version, Sources: n.Sources, Routes: n.Routes})
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// clusterGauges are the per-node cluster metrics.
func (s *Server) clusterGauges(r *http.Request) []gauge {
	var out []gauge
	if nodes, err := s.reg.Nodes(r.Context()); err == nil {
		out = append(out, gauge{"plugboard_cluster_nodes", "", float64(len(nodes))})
	}
	out = append(out, gauge{"plugboard_cluster_watch_lag_seconds", "", s.reg.WatchLag().Seconds()})
	return out
}
