// Package app is enrollflow's composition root: it turns a configuration,
// a store, a delivery channel and the master secret into a ready engine.
// `enrollflow serve`, the in-process test harness and the load generator's
// tests all wire a node through it, so they run the same assembly.
package app

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/factor/mobile"
	"github.com/enrollflow/enrollflow/factor/otp"
	"github.com/enrollflow/enrollflow/factor/totp"
	"github.com/enrollflow/enrollflow/factor/webauthn"
	"github.com/enrollflow/enrollflow/metrics"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/registry"
	"github.com/enrollflow/enrollflow/regulation"
	"github.com/enrollflow/enrollflow/steps/mfaenroll"
	"github.com/enrollflow/enrollflow/store"
)

// Options are what a node is made of.
type Options struct {
	Config config.File
	Store  store.Store
	// Outbox is the development channel: channels of type outbox write here.
	Outbox delivery.Sender
	Secret []byte           // master secret, 32+ bytes, shared by every node
	Now    func() time.Time // nil: time.Now
	TTL    time.Duration    // execution inactivity expiry; 0: engine.DefaultTTL
	// DeliveryWait bounds how long a request waits for its passcode to be
	// handed to the provider; 0: engine.DefaultEffectWait.
	DeliveryWait time.Duration
	// DeliveryBudget bounds one delivery, retries included; 0:
	// dispatch.DefaultBudget.
	DeliveryBudget time.Duration
	// Metrics, when set, observes the node: its store operations, ended
	// steps and deliveries (the HTTP layer is given it by the caller).
	Metrics *metrics.Metrics
	// AllowLocalDestinations lets channels saved through the API reach
	// this machine (dispatch.Options.AllowLocalDestinations): for tests
	// whose fake providers listen on 127.0.0.1, never for serve.
	AllowLocalDestinations bool
	Log                    zerolog.Logger
}

// Node is one assembled node.
type Node struct {
	Runner     *engine.Runner
	Dispatcher *dispatch.Dispatcher
	// Store is the store every part of the node uses (instrumented when
	// Options.Metrics is set): hand this one to the HTTP layer too.
	Store store.Store
	// Registry is the device registry every front door uses.
	Registry *registry.Registry
	// Regulator holds the per-user limits every front door applies.
	Regulator *regulation.Regulator
	// Mobile is the MOBILE factor (the mobile side's pairing and signed
	// requests) and Applications the environments' mobile applications.
	Mobile       *mobile.Factor
	Applications *mobile.Applications
}

// Build validates the configuration and returns the runner with every
// environment and its configured flows, and the dispatcher that delivers
// their passcodes.
func Build(o Options) (*Node, error) {
	envs, flows, err := o.Config.Build()
	if err != nil {
		return nil, err
	}
	deliveryEnvs, err := o.Config.Delivery()
	if err != nil {
		return nil, err
	}
	keys, err := mfa.DeriveKeys(o.Secret)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	sealer, err := mfa.NewSealer(keys.SealTOTP)
	if err != nil {
		return nil, err
	}
	configSealer, err := mfa.NewSealer(keys.SealConfig)
	if err != nil {
		return nil, err
	}
	st := o.Store
	var deliveries dispatch.Observer
	var steps engine.Observer
	if o.Metrics != nil {
		st, deliveries, steps = o.Metrics.Store(st), o.Metrics, o.Metrics
	}
	dispatcher, err := dispatch.New(dispatch.Options{Store: st, Sealer: configSealer, Outbox: o.Outbox,
		Budget: o.DeliveryBudget, Observer: deliveries, Log: o.Log, Envs: deliveryEnvs,
		AllowLocalDestinations: o.AllowLocalDestinations})
	if err != nil {
		return nil, err
	}
	warnMissingChannels(o.Log, envs, deliveryEnvs)
	totpFactor := &totp.Factor{Sealer: sealer}
	otpFactor := &otp.Factor{Messenger: dispatcher, Hasher: mfa.NewOTPHasher(keys.OTPHash)}
	apps := mobile.NewApplications(st, 0)
	mobileFactor := &mobile.Factor{Sealer: sealer, KeyHash: keys.PairingKey, Applications: apps, Index: st}
	byID := map[string]*engine.Environment{}
	for _, env := range envs {
		byID[env.ID] = env
	}
	webauthnFactor := &webauthn.Factor{UserHandleKey: keys.UserHandle, Environments: byID, Devices: st, Index: st}
	factors := factor.NewRegistry(otpFactor, totpFactor, mobileFactor, webauthnFactor)
	regulator := regulation.New(st, keys.AddressKey)
	step := mfaenroll.New(mfaenroll.Deps{Devices: st, PairingKeys: st, Applications: apps, Factors: factors, Regulator: regulator, Log: o.Log})
	runner := engine.NewRunner(st, engine.NewStepRegistry(step), envs,
		engine.Options{Now: o.Now, TTL: o.TTL, EffectWait: o.DeliveryWait, Log: o.Log, Observer: steps})
	for _, env := range envs {
		if err := runner.ConfigureFlows(env, flows[env.ID]); err != nil {
			return nil, fmt.Errorf("environment %s: %w", env.ID, err)
		}
	}
	return &Node{Runner: runner, Dispatcher: dispatcher, Store: st, Regulator: regulator, Mobile: mobileFactor, Applications: apps,
		Registry: registry.New(st, regulator, o.Now, otpFactor, totpFactor, mobileFactor, webauthnFactor)}, nil
}

// warnMissingChannels tells the operator at start-up about a method that a
// policy lets users enroll but no configured channel delivers: its
// passcodes fail (DELIVERY_UNAVAILABLE) until a channel is saved through the API.
func warnMissingChannels(log zerolog.Logger, envs []*engine.Environment, delivery map[string]dispatch.Environment) {
	for _, env := range envs {
		for _, t := range []mfa.DeviceType{mfa.Email, mfa.SMS, mfa.Voice} {
			if _, ok := delivery[env.ID].Channels[deliveryMethod(t)]; ok {
				continue
			}
			for _, p := range env.SortedPolicies() {
				if p.Pairable(t) {
					log.Warn().Str("env", env.ID).Str("method", string(t)).Str("policy", p.ID).
						Msg("no channel is configured for a method this policy enrolls; its passcodes cannot be delivered until one is saved through the API")
					break
				}
			}
		}
	}
}

func deliveryMethod(t mfa.DeviceType) delivery.Method { return delivery.Method(t) }
