package engine

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"time"
)

// Flow is a flow definition: steps by id, the first one named by the
// trigger, each step's outlets naming the next step per result.
type Flow struct {
	ID              string                    `json:"id"`
	Name            string                    `json:"name,omitempty"`
	Description     string                    `json:"description,omitempty"`
	Trigger         Trigger                   `json:"trigger"`
	StepDefinitions map[string]StepDefinition `json:"stepDefinitions"`
	CreatedAt       time.Time                 `json:"createdAt,omitzero"`
	UpdatedAt       time.Time                 `json:"updatedAt,omitzero"`
}

// Trigger names the first step.
type Trigger struct {
	Next string `json:"next"`
}

// StepDefinition is one step of a flow.
type StepDefinition struct {
	Type          string            `json:"type"`
	Configuration json.RawMessage   `json:"configuration,omitempty"`
	Input         map[string]any    `json:"input,omitempty"`
	Outlets       map[string]Outlet `json:"outlets,omitempty"`
}

// Outlet names the step that follows a result; an empty or missing outlet
// ends the flow.
type Outlet struct {
	Next string `json:"next"`
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Validate checks the whole definition against the registered step types
// and the environment; every problem is reported with its field path.
func (f *Flow) Validate(env *Environment, steps *StepRegistry) error {
	var details []ErrorDetail
	bad := func(target, code, msg string) {
		details = append(details, ErrorDetail{Code: code, Target: target, Message: msg})
	}
	if !idPattern.MatchString(f.ID) {
		bad("id", DetailInvalidValue, "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit")
	}
	if len(f.StepDefinitions) == 0 {
		bad("stepDefinitions", DetailRequired, "at least one step is required")
	}
	if f.Trigger.Next == "" {
		bad("trigger.next", DetailRequired, "must name the first step")
	} else if _, ok := f.StepDefinitions[f.Trigger.Next]; !ok {
		bad("trigger.next", DetailInvalidValue, fmt.Sprintf("names no step: %q", f.Trigger.Next))
	}
	refs := map[string][]stepRef{}
	for _, id := range sortedKeys(f.StepDefinitions) {
		sd := f.StepDefinitions[id]
		at := "stepDefinitions." + id
		if !idPattern.MatchString(id) {
			bad(at, DetailInvalidValue, "step ids must be 1 to 64 letters, digits, '_', '.' or '-'")
		}
		st, ok := steps.Lookup(sd.Type)
		if !ok {
			bad(at+".type", DetailInvalidValue, fmt.Sprintf("unknown step type %q (known: %v)", sd.Type, steps.Names()))
			continue
		}
		for _, d := range st.ValidateConfig(env, sd.Configuration) {
			// A problem with the configuration as a whole has no target of
			// its own: name the configuration, not "configuration.".
			if d.Target == "" {
				d.Target = at + ".configuration"
			} else {
				d.Target = at + ".configuration." + d.Target
			}
			details = append(details, d)
		}
		for _, result := range sortedKeys(sd.Outlets) {
			if !contains(st.Results(), result) {
				bad(at+".outlets."+result, DetailInvalidValue, fmt.Sprintf("%s has no result %q (results: %v)", sd.Type, result, st.Results()))
			}
			next := sd.Outlets[result].Next
			if _, ok := f.StepDefinitions[next]; next != "" && !ok {
				bad(at+".outlets."+result+".next", DetailInvalidValue, fmt.Sprintf("names no step: %q", next))
			}
		}
		stepRefs, err := checkExpressions(sd.Input)
		if err != nil {
			bad(at+".input."+err.path, DetailInvalidValue, err.msg)
			continue
		}
		for _, ref := range stepRefs {
			if _, ok := f.StepDefinitions[ref.stepID]; !ok {
				bad(at+".input."+ref.path, DetailInvalidValue, fmt.Sprintf("${%s} refers to unknown step %q", ref.expr, ref.stepID))
				break
			}
		}
		refs[id] = stepRefs
	}
	if len(details) == 0 {
		if cycle := f.findCycle(); cycle != "" {
			bad("stepDefinitions", DetailInvalidValue, "the outlets form a cycle through step "+cycle+"; flows must end")
		}
	}
	if len(details) == 0 {
		// Only now is the graph known to be sound and acyclic: a step may
		// read the outputs of a step that ran before it on every path from
		// the trigger, never of a later, parallel or optional one.
		ranBefore := f.alwaysRunBefore()
		for _, id := range sortedKeys(f.StepDefinitions) {
			before, reachable := ranBefore[id]
			if !reachable {
				// Dead configuration is almost always a mistyped outlet.
				bad("stepDefinitions."+id, DetailInvalidValue, "no outlet and not trigger.next leads to this step; remove it or point an outlet at it")
				continue
			}
			for _, ref := range refs[id] {
				if !before[ref.stepID] {
					bad("stepDefinitions."+id+".input."+ref.path, DetailInvalidValue,
						fmt.Sprintf("${%s} refers to step %q, which does not run before step %q on every path from trigger.next", ref.expr, ref.stepID, id))
					break
				}
			}
		}
	}
	if len(details) > 0 {
		return Invalid(details...)
	}
	return nil
}

// findCycle returns a step on a cycle of outlets, or "".
func (f *Flow) findCycle() string {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var visit func(id string) string
	visit = func(id string) string {
		switch state[id] {
		case visiting:
			return id
		case done:
			return ""
		}
		state[id] = visiting
		for _, next := range f.nextSteps(id) {
			if c := visit(next); c != "" {
				return c
			}
		}
		state[id] = done
		return ""
	}
	for _, id := range sortedKeys(f.StepDefinitions) {
		if c := visit(id); c != "" {
			return c
		}
	}
	return ""
}

// alwaysRunBefore maps every step reachable from the trigger to the set of
// steps that have ended before it on every path that reaches it (its
// dominators). The outlets must be acyclic.
func (f *Flow) alwaysRunBefore() map[string]map[string]bool {
	// Reverse post-order of a depth-first walk is a topological order: every
	// step comes after all the steps that can lead to it.
	var order []string
	seen := map[string]bool{}
	var visit func(id string)
	visit = func(id string) {
		seen[id] = true
		for _, next := range f.nextSteps(id) {
			if !seen[next] {
				visit(next)
			}
		}
		order = append(order, id)
	}
	visit(f.Trigger.Next)

	before := map[string]map[string]bool{f.Trigger.Next: {}}
	for i := len(order) - 1; i >= 0; i-- {
		id := order[i]
		viaID := map[string]bool{id: true}
		for s := range before[id] {
			viaID[s] = true
		}
		for _, next := range f.nextSteps(id) {
			known, ok := before[next]
			if !ok {
				before[next] = viaID
				continue
			}
			// Keep only what both paths ran: the intersection.
			merged := map[string]bool{}
			for s := range known {
				if viaID[s] {
					merged[s] = true
				}
			}
			before[next] = merged
		}
	}
	return before
}

// nextSteps lists the distinct steps a step's outlets lead to, sorted.
func (f *Flow) nextSteps(id string) []string {
	var next []string
	for _, r := range sortedKeys(f.StepDefinitions[id].Outlets) {
		if n := f.StepDefinitions[id].Outlets[r].Next; n != "" && !contains(next, n) {
			next = append(next, n)
		}
	}
	sort.Strings(next)
	return next
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
