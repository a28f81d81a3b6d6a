package manifests

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Workload identities on ECS. Fargate mounts no secret file, so the Kubernetes way (a Secret
// as the folder SHOP_TLS_DIR) does not carry over; a task definition can fill variables from
// Secrets Manager, so each identity is a secret, AWSTLSSecret(<identity>), a JSON object
// whose keys TLSSecretKeys name the PEM texts of the certificate, its key and the trust
// bundle, and a task takes them as SHOP_TLS_CERT_PEM, SHOP_TLS_KEY_PEM and SHOP_TLS_CA_PEM
// (NATS as NATS_TLS_*_PEM), which the processes read with the same loader as the folder
// (identity.Env). The processes then run secure as in a cluster: mutual TLS and the access
// table on every gRPC hop, NATS over TLS only (tls://), no SHOP_INSECURE. The Express
// services take theirs the same way: they call the contexts and NATS that run here.
//
// Variables are read once, when a task starts: a renewed certificate reaches the tasks by a
// deployment (deploy/README.md, "ECS on Fargate": renew and redeploy well within the
// certificate's week).

// AWSTLSSecret is the Secrets Manager secret of an identity (topology.Service.Identity) on ECS.
func AWSTLSSecret(id string) string { return "mitosis/tls/" + id }

// TLSSecretKeys are the keys of an AWSTLSSecret's JSON: the certificate, its key and the
// trust bundle, in identity.Env.PEMVars's order.
var TLSSecretKeys = [3]string{"cert", "key", "ca"}

// AWSTLSSecretString is the value of an AWSTLSSecret holding certPEM, keyPEM and caPEM, as
// `aws secretsmanager create-secret --secret-string` takes it.
func AWSTLSSecretString(certPEM, keyPEM, caPEM []byte) ([]byte, error) {
	v := map[string]string{}
	for i, b := range [][]byte{certPEM, keyPEM, caPEM} {
		v[TLSSecretKeys[i]] = string(b)
	}
	return json.Marshal(v)
}

// ecsIdentity takes the identity folder out of env (expand's, which names the mount a
// cluster has) and returns the secrets that give s's task its identity instead, for the
// process (SHOP_TLS_*_PEM) or the NATS server (NATS_TLS_*_PEM); none for a service without
// an identity.
func ecsIdentity(opts Options, s topology.Service, env map[string]string) []types.Secret {
	id := s.Identity()
	var out []types.Secret
	for _, dir := range []string{topology.TLSDirEnv, topology.NATSTLSDirEnv} {
		if _, ok := env[dir]; !ok {
			continue
		}
		delete(env, dir)
		if id == "" {
			continue
		}
		for name, ref := range identityRefs(dir, id) {
			out = append(out, types.Secret{Name: aws.String(name), ValueFrom: aws.String(opts.ecsSecretARN(ref))})
		}
	}
	return out
}

// identityRefs are the PEM variables of identity id for the folder variable dir
// (identity.EnvFor), each with the key of AWSTLSSecret(id) that holds it.
func identityRefs(dir, id string) map[string]awsRef {
	out := map[string]awsRef{}
	for i, name := range identity.EnvFor(dir).PEMVars() {
		out[name] = awsRef{AWSTLSSecret(id), TLSSecretKeys[i]}
	}
	return out
}

// awsRef is a value in Secrets Manager: a secret, and the key of its JSON object that holds
// the value ("" for the whole secret).
type awsRef struct{ name, key string }

// ecsSecretARN is r as an ECS container's secret names it (valueFrom): the secret's ARN, then
// :<key>:<stage>:<version>, the last two empty for the current version.
func (o Options) ecsSecretARN(r awsRef) string {
	arn := o.arn("secretsmanager", "secret:"+r.name)
	if r.key != "" {
		arn += ":" + r.key + "::"
	}
	return arn
}

// beanstalkSecretARN is r as Beanstalk's environment secrets name it: the secret's ARN, then
// :<key> (platform versions of 2026-01-13 or later), AWS's guide "Fetching secrets and
// parameters to Elastic Beanstalk environment variables".
func (o Options) beanstalkSecretARN(r awsRef) string {
	arn := o.arn("secretsmanager", "secret:"+r.name)
	if r.key != "" {
		arn += ":" + r.key
	}
	return arn
}

// sortSecrets orders a container's secrets by name, as its environment is.
func sortSecrets(secrets []types.Secret) []types.Secret {
	slices.SortFunc(secrets, func(a, b types.Secret) int { return strings.Compare(aws.ToString(a.Name), aws.ToString(b.Name)) })
	return secrets
}

// lambdaIdentity takes the identity folder out of a function's env and names the PEM
// variables instead, each "${VAR}" for envsubst to fill at deploy time as the function's
// other secrets (a function's environment cannot name a secret). They fit Lambda's 4 KB of
// environment (TestLambdaIdentityFits); the values must be JSON-escaped, since envsubst
// writes them inside the function's JSON (deploy/README.md, "Lambda").
func lambdaIdentity(env map[string]string) {
	if _, ok := env[topology.TLSDirEnv]; !ok {
		return
	}
	delete(env, topology.TLSDirEnv)
	for _, v := range identity.EnvFor(topology.TLSDirEnv).PEMVars() {
		env[v] = deployTimeVar(v)
	}
}
