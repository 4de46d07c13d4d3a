import os, sys, time, threading
def rss():
    with open("/proc/self/statm") as f: return int(f.read().split()[1])*4096/2**20
print("start", rss())
import psutil; print("psutil", rss())
import sqlite3; print("sqlite3", rss())
import ssl; print("ssl", rss())
import paho.mqtt.client; print("paho", rss())
import protocol; print("protocol", rss())
from apscheduler.schedulers.background import BackgroundScheduler; print("apsched", rss())
from apscheduler.executors.pool import ThreadPoolExecutor; print("apsched pool", rss())
import agent.runner; print("agent.runner", rss())
from agent.probes import all_probes; all_probes(); print("probes", rss())
from agent.config import load_config
from agent.runner import Agent
cfg = load_config(None, {"school":"s","device":"d","data_dir":"/tmp/memprobe-agent","broker":"mqtt://127.0.0.1:1"})
a = Agent(cfg); print("agent obj", rss())
a.start(); print("started", rss())
time.sleep(3); print("3s", rss())
import ctypes, gc; gc.collect(); ctypes.CDLL("libc.so.6").malloc_trim(0); print("trim", rss()); time.sleep(2); print("trim+2", rss())
a.stop()
