package hal

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/netip"
	"strings"

	"github.com/gorilla/mux"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/factor/mobile"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
)

// The mobile side: what the authenticator app (or an app with the mobile
// SDK) calls. Pairing is authorized by the pairing key itself; after it,
// the app signs its requests with the key pair it paired with.

// pairingRequest is the body of POST /{envID}/mobile/pairings.
type pairingRequest struct {
	PairingKey  string `json:"pairingKey"`
	Application *struct {
		ID string `json:"id"`
	} `json:"application"`
	Device    actions.PairingDevice `json:"device"`
	PublicKey json.RawMessage       `json:"publicKey"`
}

// maxPairingAttempts bounds the retries of a pairing that lost a race
// with another write of its execution.
const maxPairingAttempts = 3

func (s *Server) mobileRoutes(r *mux.Router) {
	m := r.PathPrefix("/{envID}/mobile").Subrouter()
	m.Use(s.rateLimit)
	s.route(m, "/pairings", methods{http.MethodPost: s.pair})
	s.route(m, "/devices/{deviceID}/pushToken", methods{http.MethodPut: s.putPushToken})
}

// pair: the app presents a pairing key and its public key; the device is
// enrolled and the execution that showed the key ends its step ENROLLED.
func (s *Server) pair(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	var req pairingRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	key, err := checkPairingRequest(&req)
	if err != nil {
		s.cfg.Observer.Paired(Outcome(err))
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	// Counted before it is looked up, per client and per environment;
	// given back when the key is found, so only wrong keys count.
	hold, err := s.cfg.Regulator.GuessPairingKey(ctx, env, clientNetwork(s.clientAddr(r)))
	if err != nil {
		s.cfg.Observer.Paired(Outcome(err))
		s.writeError(w, r, err)
		return
	}
	hash := s.cfg.Mobile.Hash(env.ID, key)
	execID, err := s.cfg.Store.GetIndex(ctx, env.ID, store.IndexPairingKey, hash)
	if errors.Is(err, store.ErrNotFound) {
		err = factor.PairingFailure(http.StatusNotFound, factor.PairingKeyNotFound, "No such pairing key.")
	} else if err != nil {
		err = engine.Unavailable(err)
	}
	if err != nil {
		s.cfg.Observer.Paired(Outcome(err))
		s.writeError(w, r, err)
		return
	}
	hold.Release(ctx)
	annotate(r, func(a *accessInfo) { a.execution = engine.LogID(execID) })
	pairing := &actions.Pairing{KeyHash: hash, ApplicationID: req.Application.ID, Device: req.Device,
		PublicKey: req.PublicKey, Seed: mobile.NewSeed()}
	var x *engine.Execution
	for attempt := 1; ; attempt++ {
		x, err = s.cfg.Runner.Act(ctx, env, execID, actions.Action{Name: actions.MobilePair, Payload: pairing})
		if err == nil || attempt == maxPairingAttempts || !retryablePairing(err) {
			break
		}
	}
	err = pairingError(err)
	s.cfg.Observer.Paired(Outcome(err))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, plainJSON, map[string]any{
		"device": map[string]any{"id": pairing.DeviceID, "type": mfa.Mobile},
		"user":   map[string]any{"id": x.UserID},
		// Shown here only: the app keeps it for offline passcodes.
		"otp": map[string]any{"secret": pairing.Seed, "algorithm": mfa.TOTPAlgorithm, "digits": mfa.TOTPDigits, "period": mfa.TOTPPeriod},
	})
}

// checkPairingRequest refuses a malformed pairing before anything is
// counted or changed, naming the field; it returns the normalized key.
func checkPairingRequest(req *pairingRequest) (string, error) {
	key := mobile.NormalizeKey(req.PairingKey)
	switch {
	case req.PairingKey == "":
		return "", engine.InvalidField("pairingKey", engine.DetailRequired, "is required")
	case !mobile.ValidKeyShape(key):
		return "", engine.InvalidField("pairingKey", engine.DetailInvalidValue, "must be the 12-digit or 16-character pairing key (or read it from the pairing URI)")
	case req.Application == nil || req.Application.ID == "":
		return "", engine.InvalidField("application.id", engine.DetailRequired, "is required")
	case !mfa.ValidApplicationID(req.Application.ID):
		return "", engine.InvalidField("application.id", engine.DetailInvalidValue, "is not an application id")
	}
	if _, err := mobile.ParsePublicKey(req.PublicKey); err != nil {
		return "", engine.InvalidField("publicKey", engine.DetailInvalidValue, err.Error())
	}
	d := req.Device
	for _, f := range []struct{ name, value string }{{"device.name", d.Name}, {"device.model", d.Model},
		{"device.os", d.OS}, {"device.osVersion", d.OSVersion}, {"device.appVersion", d.AppVersion}} {
		if len(f.value) > 100 {
			return "", engine.InvalidField(f.name, engine.DetailInvalidValue, "must be at most 100 characters")
		}
	}
	if err := checkPushToken("device.pushToken", d.PushToken); err != nil {
		return "", err
	}
	return key, nil
}

func checkPushToken(field, token string) error {
	if len(token) > 4096 || strings.ContainsAny(token, "\x00\r\n") {
		return engine.InvalidField(field, engine.DetailInvalidValue, "must be at most 4096 characters, on one line")
	}
	return nil
}

// retryablePairing: a pairing that lost a race (the execution or the
// user's devices changed under it) is judged again on what won.
func retryablePairing(err error) bool {
	e := engine.AsError(err)
	return e.Code == engine.CodeConcurrentUpdate ||
		(e.Code == engine.CodeInvalidData && len(e.Details) > 0 && e.Details[0].Code == engine.DetailLimitExceeded)
}

// pairingError says the engine's refusals in the pairing's words.
func pairingError(err error) error {
	if err == nil {
		return nil
	}
	e := engine.AsError(err)
	switch {
	case e.Code == engine.CodeNotFound:
		return factor.PairingFailure(http.StatusNotFound, factor.PairingKeyNotFound, "No such pairing key.")
	case e.Code == engine.CodeActionNotAllowed: // the execution has ended
		return factor.PairingFailure(http.StatusConflict, factor.PairingKeyUsed, "This pairing key was used already; start the enrollment again for a new one.")
	case retryablePairing(err) && e.Code == engine.CodeInvalidData:
		return factor.PairingFailure(http.StatusConflict, factor.DeviceLimitReached, "The user already has the maximum of devices; delete one and pair again.")
	}
	return err
}

// clientNetwork is what guesses are counted by: the client's address, or
// its /64 for IPv6 (one subscriber holds a whole /64).
func clientNetwork(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Unmap().Is4() {
		return addr
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// joseType is the content type of a signed request.
const joseType = "application/jose"

// putPushToken: PUT /{envID}/mobile/devices/{deviceID}/pushToken, signed
// by the device (a compact JWS, see factor/mobile): the app registers the
// push token its platform rotated.
func (s *Server) putPushToken(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	deviceID := mux.Vars(r)["deviceID"]
	signed, err := s.verifySigned(r, env, deviceID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	token := signed.claims.PushToken
	if token == nil || *token == "" {
		s.writeError(w, r, engine.InvalidField("pushToken", engine.DetailRequired, "is required in the signed claims"))
		return
	}
	if err := checkPushToken("pushToken", *token); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.cfg.Runner.Now()
	_, err = s.cfg.Registry.Update(r.Context(), env.ID, signed.userID, deviceID, func(d *mfa.Device) error {
		part, err := mobile.ReadPart(d)
		if err != nil {
			return err
		}
		part.PushToken = *token
		mobile.WritePart(d, part)
		d.UpdatedAt = now
		return nil
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type verifiedRequest struct {
	userID string
	claims mobile.Claims
}

// verifySigned authenticates a device's signed request: the JWS names the
// device of the path and its user, verifies with the key the device
// paired with, is bound to this method and path, is fresh, and its jti
// has not been seen. Every failure is the same 401 but for its detail: an
// unknown device and a bad signature look alike.
func (s *Server) verifySigned(r *http.Request, env *engine.Environment, deviceID string) (verifiedRequest, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != joseType {
		return verifiedRequest{}, &engine.Error{Status: http.StatusUnsupportedMediaType, Code: engine.CodeUnsupportedMediaType,
			Message: "The request body must be a compact JWS sent as Content-Type: application/jose.",
			Details: []engine.ErrorDetail{{Code: engine.DetailInvalidValue, Target: "Content-Type", Message: "must be application/jose"}}}
	}
	body, err := readBody(r)
	if err != nil {
		return verifiedRequest{}, err
	}
	// Every refusal reads the same but for the replay: whether a device
	// exists, is of another user, or its key did not verify is for the
	// log, not for the caller.
	denied := func(code, why string) error {
		msg := "is not a fresh request signed by the device's key"
		if code == DetailReplayed {
			msg = "this request (its jti) was seen before"
		}
		return &engine.Error{Status: http.StatusUnauthorized, Code: engine.CodeAccessFailed,
			Message: "The request is not signed by this device.", Cause: errors.New(why),
			Details: []engine.ErrorDetail{{Code: code, Target: "signature", Message: msg}}}
	}
	signed, err := mobile.ParseSigned(strings.TrimSpace(string(body)))
	if err != nil {
		return verifiedRequest{}, denied(DetailInvalidSignature, err.Error())
	}
	if signed.DeviceID != deviceID || signed.Claims.Subject == "" {
		return verifiedRequest{}, denied(DetailInvalidSignature, "kid must be the device of the path and sub its user")
	}
	ent, err := s.cfg.Registry.Get(r.Context(), env.ID, signed.Claims.Subject, deviceID)
	if err != nil {
		if engine.AsError(err).Status == http.StatusNotFound {
			return verifiedRequest{}, denied(DetailInvalidSignature, "no such device")
		}
		return verifiedRequest{}, err
	}
	if ent.Type != mfa.Mobile {
		return verifiedRequest{}, denied(DetailInvalidSignature, "no such device")
	}
	part, err := mobile.ReadPart(&ent.Device)
	if err != nil {
		return verifiedRequest{}, engine.AsError(err)
	}
	claims, err := signed.Verify(part.PublicKey, r.Method, r.URL.Path, s.cfg.Runner.Now())
	if err != nil {
		return verifiedRequest{}, denied(DetailInvalidSignature, err.Error())
	}
	first, err := s.cfg.Regulator.Once(r.Context(), env.ID+":"+deviceID+":"+claims.ID, mobile.ReplayWindow)
	if err != nil {
		return verifiedRequest{}, err
	}
	if !first {
		return verifiedRequest{}, denied(DetailReplayed, "this request (its jti) was seen before")
	}
	return verifiedRequest{userID: claims.Subject, claims: claims}, nil
}

// Detail codes of a refused signed request.
const (
	DetailInvalidSignature = "INVALID_SIGNATURE"
	DetailReplayed         = "REQUEST_REPLAYED"
)
