// Package natsauth gives each process of a stack a NATS user of its own, allowed what its
// contexts need and nothing else, derived from the table of contexts (services/bounded): the
// subjects of its own buckets ($KV.<bucket>.>) and the JetStream API calls on their streams
// (KV_<bucket>), the event subjects it publishes, its durable consumers on the event stream
// and their dead letters (and the creation of its events' consumers, which it makes before it
// publishes; the event streams only for a process that publishes or consumes events), and
// replies on an inbox prefix of its own, which no other user may read. So the cart's
// credentials read no charge, publish no order-paid and touch no event stream.
//
// It makes nats-server configuration (server.User, with permissions); the stack's NATS
// server and the hosts' connections use it. The monolith's embedded NATS, which listens on
// no port, has no users.
package natsauth

import (
	"fmt"
	"slices"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
)

// streamsOfAll are the streams every process that publishes or consumes events opens
// (natsjs.OpenBus: it creates or updates them) and publishes to through its bus.
var streamsOfAll = []string{natsjs.StreamName, natsjs.DeadLetterStream}

// Permissions are what the process running group may publish and subscribe to.
func Permissions(g bounded.Group) *server.Permissions {
	var pub []string
	api := func(stream string) {
		pub = append(pub,
			"$JS.API.STREAM.INFO."+stream,
			"$JS.API.STREAM.CREATE."+stream,
			"$JS.API.STREAM.UPDATE."+stream,
		)
	}
	pub = append(pub, "$JS.API.INFO") // the readiness check (natsjs.Ping)
	if g.UsesEvents() {
		for _, s := range streamsOfAll {
			api(s)
		}
	}
	// A process creates the consumers of the events it publishes when it opens the event
	// stream, those of contexts it does not run too (bounded.Group.EventConsumers: the stream
	// keeps an event only for the consumers that exist). Creating one reads nothing from it,
	// and a publisher can do no more harm to its events' consumers than it can by publishing.
	for _, k := range g.EventConsumers() {
		pub = append(pub,
			"$JS.API.CONSUMER.CREATE."+natsjs.StreamName+"."+k.Name,
			"$JS.API.CONSUMER.CREATE."+natsjs.StreamName+"."+k.Name+".>",
		)
	}
	for _, name := range g.Contexts {
		c, ok := bounded.Lookup(name)
		if !ok {
			continue
		}
		for _, b := range c.Buckets {
			stream := "KV_" + b
			api(stream)
			pub = append(pub,
				"$KV."+b+".>", // writes
				"$JS.API.DIRECT.GET."+stream+".>",
				"$JS.API.STREAM.MSG.GET."+stream,
				"$JS.API.CONSUMER.CREATE."+stream+".>", // watches and key listings: ordered consumers
				"$JS.API.CONSUMER.DELETE."+stream+".>",
				"$JS.API.CONSUMER.INFO."+stream+".>",
				"$JS.FC."+stream+".>", // their flow control
			)
		}
		pub = append(pub, c.Publishes...)
		for _, k := range c.Consumers {
			pub = append(pub,
				"$JS.API.CONSUMER.CREATE."+natsjs.StreamName+"."+k.Name,
				"$JS.API.CONSUMER.CREATE."+natsjs.StreamName+"."+k.Name+".>",
				"$JS.API.CONSUMER.DURABLE.CREATE."+natsjs.StreamName+"."+k.Name,
				"$JS.API.CONSUMER.INFO."+natsjs.StreamName+"."+k.Name,
				"$JS.API.CONSUMER.MSG.NEXT."+natsjs.StreamName+"."+k.Name,
				"$JS.ACK."+natsjs.StreamName+"."+k.Name+".>",
				natsjs.DeadLetterSubject(k.Name),
			)
		}
	}
	slices.Sort(pub)
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: slices.Compact(pub)},
		Subscribe: &server.SubjectPermission{Allow: []string{g.InboxPrefix() + ".>"}},
	}
}

// User is the NATS user of the process running group, with password.
func User(g bounded.Group, password string) *server.User {
	return &server.User{Username: g.Name(), Password: password, Permissions: Permissions(g)}
}

// ServerUsers are users as a NATS server knows them, each with password(user): the admin
// (Admin) with every permission, any other user the Permissions of the group it names
// (bounded.ParseName). Setup's users file, which the running stacks' NATS reads, and the
// rendered deploy files (platform/manifests.NATSAuth) both take their users from here, so a
// deployed process is allowed what the same process is allowed on this machine.
func ServerUsers(users []string, password func(user string) string) ([]*server.User, error) {
	out := make([]*server.User, 0, len(users))
	for _, id := range users {
		if id == Admin {
			out = append(out, &server.User{Username: id, Password: password(id)}) // no permissions: all
			continue
		}
		g, err := bounded.ParseName(id)
		if err != nil {
			return nil, fmt.Errorf("NATS user %s: %w", id, err)
		}
		out = append(out, User(g, password(id)))
	}
	return out, nil
}
