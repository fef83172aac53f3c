package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
)

// Partitions is the number of partitions users are spread over. It equals
// the number of Redis Cluster slots, so partition tags spread evenly.
const Partitions = 16384

// Partition names the partition of one user's records. Everything that must
// change atomically together (a user's registry and that user's executions)
// shares a partition, which the Redis backend uses as its key hash tag so
// multi-key scripts stay in one cluster slot.
func Partition(envID, userID string) string {
	h := fnv.New32a()
	h.Write([]byte(envID))
	h.Write([]byte{0})
	h.Write([]byte(userID))
	return fmt.Sprintf("%04x", h.Sum32()%Partitions)
}

// NewID returns 128 random bits as 32 lower-case hex characters.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("store: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// NewExecutionID returns a 128-bit random id followed by the user's
// partition, so that a request naming only the execution id still finds the
// partition (and so the Redis slot) its records live in.
func NewExecutionID(envID, userID string) string {
	return NewID() + Partition(envID, userID)
}

// ExecutionPartition extracts the partition from an execution id, or
// reports false when the id is not one NewExecutionID could have made.
func ExecutionPartition(id string) (string, bool) {
	if len(id) != 36 {
		return "", false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return id[32:], true
}
