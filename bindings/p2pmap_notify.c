// SPDX-License-Identifier: GPL-2.0
/*
 * PCI driver unbind notifications for p2pmap (module only: the test
 * importer includes p2pmap_shim.c, not this file).
 */
#include <linux/device.h>
#include <linux/notifier.h>
#include <linux/pci.h>

#include "p2pmap_rust.h"
#include "p2pmap_shim.h"

/*
 * NVMe removal: BUS_NOTIFY_UNBIND_DRIVER is sent before the driver's remove()
 * (__device_release_driver()), while the function's P2P memory is still
 * there; p2pmap revokes and frees every window in it before returning.
 * Bus notifiers are a blocking chain: the callback may sleep.
 */
static int p2pmap_pci_notify(struct notifier_block *nb, unsigned long action,
			     void *data)
{
	struct device *dev = data;

	if (action == BUS_NOTIFY_UNBIND_DRIVER)
		p2pmap_rust_device_unbind(to_pci_dev(dev));
	else if (action == BUS_NOTIFY_UNBOUND_DRIVER)
		p2pmap_rust_device_unbound(to_pci_dev(dev));
	return NOTIFY_DONE;
}

static struct notifier_block p2pmap_pci_nb = {
	.notifier_call = p2pmap_pci_notify,
};

int p2pmap_pci_notifier_register(void)
{
	return bus_register_notifier(&pci_bus_type, &p2pmap_pci_nb);
}

void p2pmap_pci_notifier_unregister(void)
{
	/* Takes the chain's rwsem for write: waits for a callback in flight. */
	bus_unregister_notifier(&pci_bus_type, &p2pmap_pci_nb);
}
