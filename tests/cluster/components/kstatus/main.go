// kstatus prints the kstatus verdict (sigs.k8s.io/cli-utils, the library Flux's health checks
// use) of the object, or of every object of the list, read from stdin (`kubectl get ... -o
// json`), one JSON object per line: kind, name, status, message.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	// Decoded as the API machinery does (integers stay integers), not as plain JSON.
	read := &unstructured.Unstructured{}
	if err := read.UnmarshalJSON(data); err != nil {
		fail(err)
	}
	items := []unstructured.Unstructured{*read}
	if read.IsList() {
		list, err := read.ToList()
		if err != nil {
			fail(err)
		}
		items = list.Items
	}
	out := json.NewEncoder(os.Stdout)
	for i := range items {
		u := &items[i]
		v := verdict{Kind: u.GetKind(), Name: u.GetName()}
		if res, err := status.Compute(u); err != nil {
			v.Status, v.Message = "Error", err.Error()
		} else {
			v.Status, v.Message = string(res.Status), res.Message
		}
		if err := out.Encode(v); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus: reading an object or a list from stdin:", err)
	os.Exit(2)
}
