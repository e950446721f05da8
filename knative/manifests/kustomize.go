package manifests

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"knative.dev/serving/pkg/apis/autoscaling"

	"github.com/day-trade/platform/functions"
)

const kustomizeAPI = "kustomize.config.k8s.io/v1beta1"

var kustomizeNote = []string{
	"kubectl kustomize knative/overlays/prod | KO_CONFIG_PATH=knative ko resolve -f - | kubectl apply -f -",
	"Create the Secrets from knative/secrets first; they are templates and not listed here.",
}

// Kustomization is the part of kustomize's Kustomization that we emit.
type Kustomization struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Resources  []string         `json:"resources"`
	Patches    []KustomizePatch `json:"patches,omitempty"`
}

// KustomizePatch is an inline RFC 6902 JSON patch applied to the one object Target names.
type KustomizePatch struct {
	Target PatchTarget `json:"target"`
	Patch  string      `json:"patch"`
}

// PatchTarget selects an object by group, version, kind and name.
type PatchTarget struct {
	Group   string `json:"group,omitempty"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
	Name    string `json:"name"`
}

// JSONPatchOp is one RFC 6902 operation.
type JSONPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}

// annotationPath is the JSON pointer of a revision template annotation ("/" is "~1").
func annotationPath(key string) string {
	return "/spec/template/metadata/annotations/" + strings.ReplaceAll(key, "/", "~1")
}

// overlay patches only what differs from base, so a Service keeps min <= max in every
// overlay whatever the catalog says.
func (g *generator) overlay(o Overlay) (Kustomization, error) {
	k := Kustomization{APIVersion: kustomizeAPI, Kind: "Kustomization", Resources: []string{"../../base"}}
	for _, f := range g.fs {
		s := f.Scaling
		minScale, maxScale := s.MinScale, s.MaxScale
		if o.MaxScale > 0 {
			maxScale = max(min(maxScale, o.MaxScale), minScale)
		}
		if o.MinWarm > 0 && f.Kind != functions.KindFunction {
			minScale = min(max(minScale, o.MinWarm), maxScale)
		}
		var ops []JSONPatchOp
		if minScale != s.MinScale {
			ops = append(ops, JSONPatchOp{Op: "replace", Path: annotationPath(autoscaling.MinScaleAnnotationKey), Value: strconv.Itoa(minScale)})
			if f.Kind == functions.KindService {
				ops = append(ops, JSONPatchOp{Op: "replace", Path: annotationPath(autoscaling.InitialScaleAnnotationKey), Value: strconv.Itoa(minScale)})
			}
		}
		if maxScale != s.MaxScale {
			ops = append(ops, JSONPatchOp{Op: "replace", Path: annotationPath(autoscaling.MaxScaleAnnotationKey), Value: strconv.Itoa(maxScale)})
		}
		if len(ops) == 0 {
			continue
		}
		p, err := patch("serving.knative.dev", "v1", "Service", f.Name, ops)
		if err != nil {
			return k, err
		}
		k.Patches = append(k.Patches, p)
	}
	if o.LogLevel != "" && o.LogLevel != g.opts.LogLevel {
		p, err := patch("", "v1", "ConfigMap", platformConfigMap, []JSONPatchOp{{Op: "replace", Path: "/data/LOG_LEVEL", Value: o.LogLevel}})
		if err != nil {
			return k, err
		}
		k.Patches = append(k.Patches, p)
	}
	return k, nil
}

func patch(group, version, kind, name string, ops []JSONPatchOp) (KustomizePatch, error) {
	b, err := json.Marshal(ops)
	if err != nil {
		return KustomizePatch{}, fmt.Errorf("manifests: patch %s/%s: %w", kind, name, err)
	}
	return KustomizePatch{Target: PatchTarget{Group: group, Version: version, Kind: kind, Name: name}, Patch: string(b)}, nil
}

var koNote = []string{
	"ko's build config: run ko from the repository root with KO_CONFIG_PATH=knative.",
	"Static, stripped, reproducible binaries on a distroless nonroot base.",
}

// KoConfig is the part of ko's .ko.yaml that we emit.
type KoConfig struct {
	DefaultBaseImage string    `json:"defaultBaseImage"`
	Builds           []KoBuild `json:"builds"`
}

// KoBuild is one binary's go build settings (GoReleaser's format).
type KoBuild struct {
	ID      string   `json:"id"`
	Dir     string   `json:"dir"`
	Main    string   `json:"main"`
	Env     []string `json:"env"`
	Flags   []string `json:"flags"`
	Ldflags []string `json:"ldflags"`
}

func (g *generator) ko() KoConfig {
	c := KoConfig{DefaultBaseImage: g.opts.BaseImage}
	for _, f := range g.fs {
		c.Builds = append(c.Builds, KoBuild{
			ID:      f.Name,
			Dir:     ".",
			Main:    "./" + strings.TrimPrefix(f.ImportPath(), functions.Module+"/"),
			Env:     []string{"CGO_ENABLED=0"},
			Flags:   []string{"-trimpath"},
			Ldflags: []string{"-s", "-w"},
		})
	}
	return c
}
